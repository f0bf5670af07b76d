#include "core/light_machine.h"

namespace halo::core {

namespace {
constexpr const char* kStartBoth = "start_both";
constexpr const char* kStopBoth = "stop_both";

std::string stopHint() {
  return "wait for it to finish (halo waitstart/waitstop), or abort it with halo forcestop";
}
}  // namespace

const char* operationName(Operation op) {
  switch (op) {
    case Operation::None: return "none";
    case Operation::Start: return "start";
    case Operation::Stop: return "stop";
    case Operation::Restart: return "restart";
    case Operation::Stopstart: return "stopstart";
    case Operation::Forcestop: return "forcestop";
    case Operation::Wait: return "wait";
    case Operation::Wakeup: return "wakeup";
  }
  return "none";
}

std::optional<Operation> parseOperation(std::string_view name) {
  for (Operation op : {Operation::None, Operation::Start, Operation::Stop, Operation::Restart,
                       Operation::Stopstart, Operation::Forcestop, Operation::Wait,
                       Operation::Wakeup}) {
    if (name == operationName(op)) {
      return op;
    }
  }
  return std::nullopt;
}

void LightMachine::enqueueScript(std::string name, std::vector<std::string> args,
                                 ScriptKind kind) {
  queue_.push_back(RunScript{std::move(name), std::move(args), kind});
}

void LightMachine::enqueueStart(const std::string& action) {
  start_action_ = action;
  queue_.push_back(SetState{{MainState::Wait, Readiness::Transient}});
  enqueueScript("transition", {"STOP", "WAIT", action}, ScriptKind::Notify);
  enqueueScript("prestart", {"STOP", "WAIT", action}, ScriptKind::Start);
  // The start ends here, in WAIT (Transient): the driver wakes the module up (enqueueWakeup)
  // once the failover rules allow it.
}

void LightMachine::enqueueWakeup(const std::string& action) {
  queue_.push_back(SetState{{MainState::Up, Readiness::Transient}});
  enqueueScript("transition", {"WAIT", "UP", action}, ScriptKind::Notify);
  enqueueScript(kStartBoth, {"WAIT", "UP", action}, ScriptKind::Start);
  queue_.push_back(SetState{{MainState::Up, Readiness::Ready}});
}

void LightMachine::enqueueStop(MainState from, const std::string& action, bool graceful,
                               bool app_may_run) {
  const std::string cur = mainStateName(from);
  queue_.push_back(SetState{{from, Readiness::Transient}});
  if (app_may_run) {
    if (graceful) {
      enqueueScript(kStopBoth, {cur, "STOP", action}, ScriptKind::StopGraceful);
    }
    enqueueScript(kStopBoth, {"force", cur, "STOP", action}, ScriptKind::StopForce);
  }
  enqueueScript("transition", {cur, "STOP", action}, ScriptKind::Notify);
  enqueueScript("poststop", {cur, "STOP", action}, ScriptKind::Notify);
  queue_.push_back(SetState{{MainState::Stop, Readiness::NotReady}});
}

Status LightMachine::busyError() const {
  // To an operator a wakeup is the end of a start.
  const char* what = op_ == Operation::Wakeup ? "start" : operationName(op_);
  return failedPrecondition(std::string("the module is busy (") + what + " in progress, " +
                            state_.describe() + "); " + stopHint());
}

void LightMachine::enqueueRestart(const std::vector<std::string>& extra) {
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  queue_.push_back(SetState{{MainState::Up, Readiness::Transient}});
  enqueueScript(kStopBoth, with({"UP", "UP", "restart"}), ScriptKind::StopGraceful);
  enqueueScript(kStopBoth, with({"force", "UP", "UP", "restart"}), ScriptKind::StopForce);
  enqueueScript(kStartBoth, with({"UP", "UP", "restart"}), ScriptKind::Start);
  queue_.push_back(SetState{{MainState::Up, Readiness::Ready}});
}

Status LightMachine::check(Operation op) const {
  const std::string now = state_.describe();
  const bool busy = op_ != Operation::None;
  const bool stopped = state_.main == MainState::Stop;
  switch (op) {
    case Operation::None:
      return invalidArgument("no operation");
    case Operation::Start:
      if (busy) {
        return busyError();
      }
      if (!stopped) {
        return failedPrecondition("the module is already started (" + now +
                                  "); use halo restart or halo stopstart to restart it");
      }
      return okStatus();
    case Operation::Stop:
    case Operation::Stopstart:
      if (busy) {
        return busyError();
      }
      if (stopped) {
        return failedPrecondition("the module is not started (" + now + ")" +
                                  (op == Operation::Stopstart ? "; use halo start" : ""));
      }
      return okStatus();
    case Operation::Restart:
      if (busy || state_ != ModuleState{MainState::Up, Readiness::Ready}) {
        return failedPrecondition("restart needs the module UP (Ready); it is " + now +
                                  (busy ? std::string(" with ") + operationName(op_) +
                                              " in progress"
                                        : std::string()));
      }
      return okStatus();
    case Operation::Wait:
      if (busy || stopped) {
        return failedPrecondition("wait needs a started, idle module; it is " + now);
      }
      return okStatus();
    case Operation::Wakeup:
      if (busy || state_.main != MainState::Wait) {
        return failedPrecondition("wakeup needs a module in WAIT; it is " + now);
      }
      return okStatus();
    case Operation::Forcestop:
      if (stopped && !busy) {
        return failedPrecondition("the module is not started (" + now + ")");
      }
      return okStatus();
  }
  return invalidArgument("unknown operation");
}

Result<std::vector<Action>> LightMachine::command(Operation op,
                                                  const std::vector<std::string>& extra_args) {
  HALO_RETURN_IF_ERROR(check(op));
  std::vector<Action> out;
  switch (op) {
    case Operation::None:
      break;
    case Operation::Start:
      enqueueStart("start");
      break;
    case Operation::Stop:
      enqueueStop(state_.main, "stop", true, state_.main == MainState::Up);
      break;
    case Operation::Restart:
      enqueueRestart(extra_args);
      break;
    case Operation::Stopstart:
      enqueueStop(state_.main, "stopstart", true, state_.main == MainState::Up);
      enqueueStart("stopstart");
      break;
    case Operation::Wait:
      if (state_.main == MainState::Up) {
        queue_.push_back(SetState{{MainState::Up, Readiness::Transient}});
        enqueueScript(kStopBoth, {"UP", "WAIT", "stopwait"}, ScriptKind::StopGraceful);
        enqueueScript(kStopBoth, {"force", "UP", "WAIT", "stopwait"}, ScriptKind::StopForce);
        enqueueScript("transition", {"UP", "WAIT", "stopwait"}, ScriptKind::Notify);
      }
      start_action_ = "start";
      queue_.push_back(SetState{{MainState::Wait, Readiness::NotReady}});
      break;
    case Operation::Wakeup:
      enqueueWakeup(start_action_);
      break;
    case Operation::Forcestop:
      if (running_) {
        out.push_back(KillScript{});
        out.push_back(LogLine{Severity::Error, "Script " + running_->name + " killed by forcestop"});
        running_.reset();
      }
      queue_.clear();
      // Mid-start the application may be partly up, so stop_both force is called in any state.
      enqueueStop(state_.main, "stop", false, true);
      break;
  }
  op_ = op;
  auto more = advance();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::vector<Action> LightMachine::scriptFinished(const ScriptOutcome& outcome) {
  std::vector<Action> out;
  if (!running_) {
    return out;  // a late report for a script forcestop already abandoned
  }
  const RunScript done = *running_;
  running_.reset();
  if (outcome.present && !outcome.success) {
    switch (done.kind) {
      case ScriptKind::Start: {
        out.push_back(LogLine{Severity::Error, "Script " + done.name + " failed (" +
                                                   outcome.detail + "): stopping the module"});
        queue_.clear();
        // After a failed start_both the application may be half started: stop it.
        enqueueStop(state_.main, "stop", true, done.name == kStartBoth);
        op_ = Operation::Stop;
        break;
      }
      case ScriptKind::StopGraceful:
        out.push_back(LogLine{Severity::Error, "Script " + done.name + " failed (" +
                                                   outcome.detail + "): calling it with force"});
        break;
      case ScriptKind::StopForce:
      case ScriptKind::Notify:
        out.push_back(
            LogLine{Severity::Error, "Script " + done.name + " failed (" + outcome.detail + ")"});
        break;
    }
  }
  auto more = advance();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::vector<Action> LightMachine::recover(ModuleState persisted, Operation interrupted) {
  state_ = persisted;
  std::vector<Action> out;
  out.push_back(SetState{state_});
  switch (interrupted) {
    case Operation::None:
      out.push_back(LogLine{Severity::Info, "Recovered state " + state_.describe() +
                                                "; the application was not restarted"});
      if (state_.main == MainState::Stop) {
        out.push_back(OperationDone{true});
      }
      return out;
    case Operation::Wait:
      out.push_back(LogLine{Severity::Error, "The runtime died during wait; finishing it"});
      enqueueScript(kStopBoth, {"force", mainStateName(state_.main), "WAIT", "stopwait"},
                    ScriptKind::StopForce);
      queue_.push_back(SetState{{MainState::Wait, Readiness::NotReady}});
      op_ = Operation::Wait;
      break;
    case Operation::Start:
    case Operation::Stopstart:
    case Operation::Wakeup:
      // The application may be partly started: stop it cleanly and start again.
      out.push_back(LogLine{Severity::Error, std::string("The runtime died during ") +
                                                 operationName(interrupted) +
                                                 "; running stopstart to finish it cleanly"});
      enqueueStop(state_.main, "stopstart", true, true);
      enqueueStart("stopstart");
      op_ = Operation::Stopstart;
      break;
    case Operation::Restart:
      out.push_back(LogLine{Severity::Error, "The runtime died during restart; restarting again"});
      enqueueRestart({});
      op_ = Operation::Restart;
      break;
    case Operation::Stop:
    case Operation::Forcestop:
      out.push_back(LogLine{Severity::Error, std::string("The runtime died during ") +
                                                 operationName(interrupted) +
                                                 "; finishing the stop"});
      enqueueStop(state_.main, "stop", true, true);
      op_ = Operation::Stop;
      break;
  }
  auto more = advance();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::vector<Action> LightMachine::advance() {
  std::vector<Action> out;
  while (!queue_.empty()) {
    Step step = std::move(queue_.front());
    queue_.pop_front();
    if (auto* s = std::get_if<SetState>(&step)) {
      state_ = s->state;
      out.push_back(*s);
    } else if (auto* l = std::get_if<LogLine>(&step)) {
      out.push_back(*l);
    } else {
      running_ = std::get<RunScript>(step);
      out.push_back(*running_);
      return out;
    }
  }
  if (op_ != Operation::None) {
    op_ = Operation::None;
    out.push_back(OperationDone{state_.main == MainState::Stop});
  }
  return out;
}

}  // namespace halo::core
