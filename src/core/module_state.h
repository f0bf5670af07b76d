#pragma once
// Module states (reference 2.1): a main state and a readiness, as shown by `halo state`.

#include <optional>
#include <string>
#include <string_view>

namespace halo::core {

enum class MainState { Stop, Wait, Alone, Prim, Second, Up };
enum class Readiness { NotReady, Transient, Ready };

const char* mainStateName(MainState s);   // "STOP", "WAIT", ...
const char* readinessName(Readiness r);   // "NotReady", "Transient", "Ready"
std::optional<MainState> parseMainState(std::string_view name);  // case-insensitive
std::optional<Readiness> parseReadiness(std::string_view name);

struct ModuleState {
  MainState main = MainState::Stop;
  Readiness readiness = Readiness::NotReady;
  bool operator==(const ModuleState&) const = default;
  // "UP (Ready)"
  std::string describe() const;
  // Stable states are where a wait can end: not Transient.
  bool stable() const { return readiness != Readiness::Transient; }
};

// Exit code of `halo state -m AM -lq`: STOP=0, WAIT=1, ALONE=2, UP=2, PRIM=3, SECOND=4.
int stateExitCode(MainState s);

}  // namespace halo::core
