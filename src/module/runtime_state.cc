#include "module/runtime_state.h"

#include <nlohmann/json.hpp>

#include "sys/files.h"

namespace halo::module {

Status savePersistedState(const Paths& paths, const std::string& module,
                          const PersistedState& s) {
  nlohmann::json j = {{"state", core::mainStateName(s.state.main)},
                      {"readiness", core::readinessName(s.state.readiness)},
                      {"operation", core::operationName(s.operation)},
                      {"last_error", s.last_error},
                      {"loop_count", s.loop.count},
                      {"loop_window_start_us",
                       std::chrono::duration_cast<std::chrono::microseconds>(
                           s.loop.window_start.time_since_epoch())
                           .count()}};
  return sys::writeFileAtomic(paths.runtimeStateFile(module), j.dump() + "\n");
}

Result<PersistedState> loadPersistedState(const Paths& paths, const std::string& module) {
  const std::string path = paths.runtimeStateFile(module);
  PersistedState s;
  if (!sys::pathExists(path)) {
    return s;
  }
  HALO_ASSIGN_OR_RETURN(std::string text, sys::readFile(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return internalError(path + ": corrupt runtime state (not JSON); remove it to reset");
  }
  auto main = core::parseMainState(j.value("state", ""));
  auto ready = core::parseReadiness(j.value("readiness", ""));
  auto op = core::parseOperation(j.value("operation", ""));
  if (!main || !ready || !op) {
    return internalError(path + ": corrupt runtime state (unknown values); remove it to reset");
  }
  s.state = {*main, *ready};
  s.operation = *op;
  s.last_error = j.value("last_error", "");
  s.loop.count = j.value("loop_count", 0);
  s.loop.window_start = SystemTime(std::chrono::duration_cast<SystemTime::duration>(
      std::chrono::microseconds(j.value("loop_window_start_us", int64_t{0}))));
  return s;
}

}  // namespace halo::module
