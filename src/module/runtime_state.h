#pragma once
// The runtime's lifecycle state, persisted atomically at every change so that a runtime killed
// with -9 and respawned by halod resumes where it was without restarting the application.

#include <string>

#include "base/paths.h"
#include "base/status.h"
#include "core/light_machine.h"
#include "core/loop_counter.h"
#include "core/module_state.h"

namespace halo::module {

struct PersistedState {
  core::ModuleState state;
  core::Operation operation = core::Operation::None;
  std::string last_error;  // why the last start failed, shown by `halo state -v`
  core::LoopCounterState loop;  // maxloop count, so a runtime crash does not reset it
};

Status savePersistedState(const Paths& paths, const std::string& module, const PersistedState& s);
// A module never started (no file) reads as STOP (NotReady).
Result<PersistedState> loadPersistedState(const Paths& paths, const std::string& module);

}  // namespace halo::module
