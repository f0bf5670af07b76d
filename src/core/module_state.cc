#include "core/module_state.h"

#include <cctype>
#include <string>

namespace halo::core {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) !=
        std::toupper(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}
constexpr MainState kAllMain[] = {MainState::Stop, MainState::Wait, MainState::Alone,
                                  MainState::Prim, MainState::Second, MainState::Up};
constexpr Readiness kAllReadiness[] = {Readiness::NotReady, Readiness::Transient,
                                       Readiness::Ready};
}  // namespace

const char* mainStateName(MainState s) {
  switch (s) {
    case MainState::Stop: return "STOP";
    case MainState::Wait: return "WAIT";
    case MainState::Alone: return "ALONE";
    case MainState::Prim: return "PRIM";
    case MainState::Second: return "SECOND";
    case MainState::Up: return "UP";
  }
  return "?";
}

const char* readinessName(Readiness r) {
  switch (r) {
    case Readiness::NotReady: return "NotReady";
    case Readiness::Transient: return "Transient";
    case Readiness::Ready: return "Ready";
  }
  return "?";
}

std::optional<MainState> parseMainState(std::string_view name) {
  for (MainState s : kAllMain) {
    if (iequals(name, mainStateName(s))) {
      return s;
    }
  }
  return std::nullopt;
}

std::optional<Readiness> parseReadiness(std::string_view name) {
  for (Readiness r : kAllReadiness) {
    if (iequals(name, readinessName(r))) {
      return r;
    }
  }
  return std::nullopt;
}

std::string ModuleState::describe() const {
  return std::string(mainStateName(main)) + " (" + readinessName(readiness) + ")";
}

int stateExitCode(MainState s) {
  switch (s) {
    case MainState::Stop: return 0;
    case MainState::Wait: return 1;
    case MainState::Alone: return 2;
    case MainState::Up: return 2;
    case MainState::Prim: return 3;
    case MainState::Second: return 4;
  }
  return 0;
}

}  // namespace halo::core
