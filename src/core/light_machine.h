#pragma once
// LightMachine: the lifecycle of a light module (reference 2.5: STOP / WAIT / UP) as a pure
// function of (state, event) -> actions. It never runs a script or reads a clock: the module
// runtime executes the actions and feeds back each script's outcome.
//
// Script call order (documented in docs/module-lifecycle.md):
//   start      transition STOP WAIT a; prestart STOP WAIT a; then WAIT (Transient) until the
//              driver opens the gate (no wait rule holds, no wait resource is init):
//   wakeup     transition WAIT UP a; start_both WAIT UP a   (a: the action that started it)
//   wait       stop_both UP WAIT stopwait; stop_both force UP WAIT stopwait;
//              transition UP WAIT stopwait; then WAIT (NotReady) until wakeup
//   stop       stop_both UP STOP a; stop_both force UP STOP a; transition UP STOP a; poststop UP STOP a
//   restart    stop_both UP UP restart; stop_both force UP UP restart; start_both UP UP restart
//   stopstart  stop (a = stopstart), then start (a = stopstart)
//   forcestop  kill the running script; stop_both force X STOP stop; transition; poststop
// A failing prestart or start_both stops the module (STOP NotReady) and logs why.

#include <deque>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/status.h"
#include "core/module_state.h"

namespace halo::core {

enum class Operation { None, Start, Stop, Restart, Stopstart, Forcestop, Wait, Wakeup };
const char* operationName(Operation op);  // "start", "stop", ...
std::optional<Operation> parseOperation(std::string_view name);

enum class ScriptKind {
  Start,         // failure aborts the start
  StopGraceful,  // bounded by nicestoptimeout
  StopForce,     // bounded by forcestoptimeout
  Notify,        // transition, poststop: failure is logged only
};

struct RunScript {
  std::string name;               // file name in the module's bin directory
  std::vector<std::string> args;  // ["force",] current, next, action
  ScriptKind kind = ScriptKind::Notify;
  bool operator==(const RunScript&) const = default;
};
struct SetState {
  ModuleState state;
};
enum class Severity { Critical, Error, User, State, Info };
struct LogLine {
  Severity severity;
  std::string message;
};
// Kill the script that is running now (forcestop).
struct KillScript {};
// The operation ended; `stopped` means the module is STOP and its runtime may exit.
struct OperationDone {
  bool stopped;
};
using Action = std::variant<RunScript, SetState, LogLine, KillScript, OperationDone>;

struct ScriptOutcome {
  bool present = true;  // false: the module has no such script (it is optional)
  bool success = true;
  std::string detail;   // "exit code 1", "timed out after 300 s"
};

class LightMachine {
 public:
  LightMachine() = default;

  // An operator or automatic command. FailedPrecondition, with what to do instead, when the
  // command does not apply in the current state.
  // Whether `op` applies now: the refusal command() would return, without changing anything.
  Status check(Operation op) const;
  // `extra_args` are appended to the scripts of a restart (errd's `-Services "s1, s2"`).
  Result<std::vector<Action>> command(Operation op, const std::vector<std::string>& extra_args = {});
  // The RunScript emitted last has ended.
  std::vector<Action> scriptFinished(const ScriptOutcome& outcome);
  // The runtime restarted: continue from what it had persisted.
  std::vector<Action> recover(ModuleState persisted, Operation interrupted);

  // True when the module is started but held in WAIT: the driver decides when to wake it up.
  bool waiting() const { return op_ == Operation::None && state_.main == MainState::Wait; }
  ModuleState state() const { return state_; }
  Operation operation() const { return op_; }
  const std::optional<RunScript>& runningScript() const { return running_; }

 private:
  using Step = std::variant<RunScript, SetState, LogLine>;
  void enqueueStart(const std::string& action);
  // `app_may_run`: the application may be running, so stop_both must be called.
  void enqueueStop(MainState from, const std::string& action, bool graceful, bool app_may_run);
  Status busyError() const;
  void enqueueWakeup(const std::string& action);
  void enqueueRestart(const std::vector<std::string>& extra_args);
  void enqueueScript(std::string name, std::vector<std::string> args, ScriptKind kind);
  std::vector<Action> advance();

  ModuleState state_;
  Operation op_ = Operation::None;
  std::deque<Step> queue_;
  std::optional<RunScript> running_;
  std::string start_action_ = "start";  // action of the start a wakeup completes
};

}  // namespace halo::core
