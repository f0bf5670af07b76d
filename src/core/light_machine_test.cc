#include "core/light_machine.h"

#include <gtest/gtest.h>

namespace halo::core {
namespace {

// Runs the machine to completion, answering each script with `outcome_for(name, args)`, and
// records the script calls as "name arg1 arg2 ...".
class Driver {
 public:
  explicit Driver(LightMachine& m) : m_(m) {}
  std::function<ScriptOutcome(const RunScript&)> outcome_for = [](const RunScript&) {
    return ScriptOutcome{};
  };
  std::vector<std::string> calls;
  std::vector<std::string> logs;
  std::vector<ModuleState> states;
  std::optional<bool> done_stopped;

  // Like the runtime without wait rules: a module held in WAIT after a start wakes up at once.
  bool auto_wakeup = true;

  void feed(std::vector<Action> actions) {
    for (int guard = 0; guard < 100; ++guard) {
      std::optional<RunScript> run;
      for (auto& a : actions) {
        if (auto* r = std::get_if<RunScript>(&a)) {
          std::string c = r->name;
          for (auto& x : r->args) {
            c += " " + x;
          }
          calls.push_back(c);
          run = *r;
        } else if (auto* s = std::get_if<SetState>(&a)) {
          states.push_back(s->state);
        } else if (auto* l = std::get_if<LogLine>(&a)) {
          logs.push_back(l->message);
        } else if (auto* d = std::get_if<OperationDone>(&a)) {
          done_stopped = d->stopped;
        }
      }
      if (!run) {
        if (auto_wakeup && m_.waiting() && m_.state().readiness == Readiness::Transient) {
          actions = *m_.command(Operation::Wakeup);
          continue;
        }
        return;
      }
      actions = m_.scriptFinished(outcome_for(*run));
    }
    FAIL() << "machine did not settle";
  }

 private:
  LightMachine& m_;
};

TEST(LightMachineTest, StartRunsScriptsInOrderAndEndsUpReady) {
  LightMachine m;
  Driver d(m);
  auto r = m.command(Operation::Start);
  ASSERT_TRUE(r.ok());
  d.feed(*r);
  EXPECT_EQ(d.calls, (std::vector<std::string>{"transition STOP WAIT start",
                                               "prestart STOP WAIT start",
                                               "transition WAIT UP start",
                                               "start_both WAIT UP start"}));
  EXPECT_EQ(m.state(), (ModuleState{MainState::Up, Readiness::Ready}));
  EXPECT_EQ(d.states.front(), (ModuleState{MainState::Wait, Readiness::Transient}));
  EXPECT_EQ(d.done_stopped, false);
  EXPECT_EQ(m.operation(), Operation::None);
}

TEST(LightMachineTest, StartStopsAtTheGateUntilWakeup) {
  LightMachine m;
  Driver d(m);
  d.auto_wakeup = false;
  d.feed(*m.command(Operation::Start));
  EXPECT_EQ(d.calls.back(), "prestart STOP WAIT start");
  EXPECT_EQ(m.state(), (ModuleState{MainState::Wait, Readiness::Transient}));
  EXPECT_TRUE(m.waiting());
  // A wait rule holds: the module waits, NotReady, without having started the application.
  d.feed(*m.command(Operation::Wait));
  EXPECT_EQ(m.state(), (ModuleState{MainState::Wait, Readiness::NotReady}));
  EXPECT_EQ(d.calls.back(), "prestart STOP WAIT start");
  d.feed(*m.command(Operation::Wakeup));
  EXPECT_EQ(d.calls.back(), "start_both WAIT UP start");
  EXPECT_EQ(m.state(), (ModuleState{MainState::Up, Readiness::Ready}));
}

TEST(LightMachineTest, WaitStopsTheApplicationAndWakeupStartsIt) {
  LightMachine m;
  Driver d(m);
  d.feed(*m.command(Operation::Start));
  d.calls.clear();
  d.auto_wakeup = false;
  d.feed(*m.command(Operation::Wait));
  EXPECT_EQ(d.calls, (std::vector<std::string>{"stop_both UP WAIT stopwait",
                                               "stop_both force UP WAIT stopwait",
                                               "transition UP WAIT stopwait"}));
  EXPECT_EQ(m.state(), (ModuleState{MainState::Wait, Readiness::NotReady}));
  EXPECT_EQ(m.command(Operation::Restart).status().code(), StatusCode::FailedPrecondition);
  d.calls.clear();
  d.feed(*m.command(Operation::Wakeup));
  EXPECT_EQ(d.calls, (std::vector<std::string>{"transition WAIT UP start",
                                               "start_both WAIT UP start"}));
  // Stop from WAIT does not call stop_both: the application is not running.
  d.feed(*m.command(Operation::Wait));
  d.calls.clear();
  d.feed(*m.command(Operation::Stop));
  EXPECT_EQ(d.calls, (std::vector<std::string>{"transition WAIT STOP stop",
                                               "poststop WAIT STOP stop"}));
}

TEST(LightMachineTest, StopCallsStopScriptGracefulThenForce) {
  LightMachine m;
  Driver d(m);
  d.feed(*m.command(Operation::Start));
  d.calls.clear();
  d.feed(*m.command(Operation::Stop));
  EXPECT_EQ(d.calls, (std::vector<std::string>{"stop_both UP STOP stop",
                                               "stop_both force UP STOP stop",
                                               "transition UP STOP stop",
                                               "poststop UP STOP stop"}));
  EXPECT_EQ(m.state(), (ModuleState{MainState::Stop, Readiness::NotReady}));
  EXPECT_EQ(d.done_stopped, true);
}

TEST(LightMachineTest, RefusesWhatDoesNotApply) {
  LightMachine m;
  EXPECT_EQ(m.command(Operation::Stop).status().code(), StatusCode::FailedPrecondition);
  EXPECT_EQ(m.command(Operation::Restart).status().code(), StatusCode::FailedPrecondition);
  Driver d(m);
  auto r = m.command(Operation::Start);
  ASSERT_TRUE(r.ok());
  // The start is waiting on its first script: a stop now is refused with a way out.
  auto stop = m.command(Operation::Stop);
  ASSERT_FALSE(stop.ok());
  EXPECT_NE(stop.status().message().find("forcestop"), std::string::npos);
  auto again = m.command(Operation::Start);
  ASSERT_FALSE(again.ok());
  d.feed(*r);
  auto start2 = m.command(Operation::Start);
  ASSERT_FALSE(start2.ok());
  EXPECT_NE(start2.status().message().find("already started (UP (Ready))"), std::string::npos);
}

TEST(LightMachineTest, FailingStartScriptStopsTheModule) {
  LightMachine m;
  Driver d(m);
  d.outcome_for = [](const RunScript& r) {
    return r.name == "start_both" ? ScriptOutcome{true, false, "exit code 3"} : ScriptOutcome{};
  };
  d.feed(*m.command(Operation::Start));
  EXPECT_EQ(m.state(), (ModuleState{MainState::Stop, Readiness::NotReady}));
  ASSERT_FALSE(d.logs.empty());
  EXPECT_EQ(d.logs.front(), "Script start_both failed (exit code 3): stopping the module");
  EXPECT_EQ(d.calls.back(), "poststop UP STOP stop");
  EXPECT_NE(std::find(d.calls.begin(), d.calls.end(), "stop_both force UP STOP stop"),
            d.calls.end());
  EXPECT_EQ(d.done_stopped, true);
}

TEST(LightMachineTest, FailingPrestartDoesNotCallStopBoth) {
  LightMachine m;
  Driver d(m);
  d.outcome_for = [](const RunScript& r) {
    return r.name == "prestart" ? ScriptOutcome{true, false, "exit code 1"} : ScriptOutcome{};
  };
  d.feed(*m.command(Operation::Start));
  EXPECT_EQ(m.state().main, MainState::Stop);
  for (auto& c : d.calls) {
    EXPECT_EQ(c.find("start_both"), std::string::npos) << c;
    EXPECT_EQ(c.find("stop_both"), std::string::npos) << c;
  }
}

TEST(LightMachineTest, RestartOnlyCallsStopAndStartScripts) {
  LightMachine m;
  Driver d(m);
  d.feed(*m.command(Operation::Start));
  d.calls.clear();
  d.feed(*m.command(Operation::Restart));
  EXPECT_EQ(d.calls, (std::vector<std::string>{"stop_both UP UP restart",
                                               "stop_both force UP UP restart",
                                               "start_both UP UP restart"}));
  EXPECT_EQ(m.state(), (ModuleState{MainState::Up, Readiness::Ready}));
}

TEST(LightMachineTest, RestartPassesExtraArgumentsToItsScripts) {
  LightMachine m;
  Driver d(m);
  d.feed(*m.command(Operation::Start));
  d.calls.clear();
  d.feed(*m.command(Operation::Restart, {"-Services", "cron, ssh"}));
  EXPECT_EQ(d.calls, (std::vector<std::string>{"stop_both UP UP restart -Services cron, ssh",
                                               "stop_both force UP UP restart -Services cron, ssh",
                                               "start_both UP UP restart -Services cron, ssh"}));
}

TEST(LightMachineTest, StopstartStopsThenStartsWithoutEnding) {
  LightMachine m;
  Driver d(m);
  d.feed(*m.command(Operation::Start));
  d.calls.clear();
  d.done_stopped.reset();
  d.feed(*m.command(Operation::Stopstart));
  ASSERT_EQ(d.calls.size(), 8u);
  EXPECT_EQ(d.calls[0], "stop_both UP STOP stopstart");
  EXPECT_EQ(d.calls[3], "poststop UP STOP stopstart");
  EXPECT_EQ(d.calls[7], "start_both WAIT UP stopstart");
  EXPECT_EQ(d.done_stopped, false);
  EXPECT_EQ(m.state(), (ModuleState{MainState::Up, Readiness::Ready}));
}

TEST(LightMachineTest, ForcestopKillsTheRunningStartScript) {
  LightMachine m;
  auto r = m.command(Operation::Start);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(m.runningScript().has_value());
  auto f = m.command(Operation::Forcestop);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(std::holds_alternative<KillScript>(f->front()));
  Driver d(m);
  d.feed(*f);
  EXPECT_EQ(d.calls.front(), "stop_both force WAIT STOP stop");
  EXPECT_EQ(m.state().main, MainState::Stop);
  // The killed script's late report changes nothing.
  EXPECT_TRUE(m.scriptFinished(ScriptOutcome{true, false, "killed"}).empty());
}

TEST(LightMachineTest, RecoverStableStateRunsNothing) {
  LightMachine m;
  Driver d(m);
  d.feed(m.recover({MainState::Up, Readiness::Ready}, Operation::None));
  EXPECT_TRUE(d.calls.empty());
  EXPECT_EQ(m.state(), (ModuleState{MainState::Up, Readiness::Ready}));
}

TEST(LightMachineTest, RecoverInterruptedStartRestartsCleanly) {
  LightMachine m;
  Driver d(m);
  d.feed(m.recover({MainState::Wait, Readiness::Transient}, Operation::Start));
  ASSERT_FALSE(d.calls.empty());
  EXPECT_EQ(d.calls.front(), "stop_both WAIT STOP stopstart");
  EXPECT_EQ(d.calls.back(), "start_both WAIT UP stopstart");
  EXPECT_EQ(m.state(), (ModuleState{MainState::Up, Readiness::Ready}));
}

TEST(ModuleStateTest, NamesAndExitCodes) {
  EXPECT_EQ((ModuleState{MainState::Up, Readiness::Ready}).describe(), "UP (Ready)");
  EXPECT_EQ(parseMainState("second"), MainState::Second);
  EXPECT_FALSE(parseMainState("UPP").has_value());
  EXPECT_EQ(stateExitCode(MainState::Stop), 0);
  EXPECT_EQ(stateExitCode(MainState::Wait), 1);
  EXPECT_EQ(stateExitCode(MainState::Up), 2);
  EXPECT_EQ(stateExitCode(MainState::Alone), 2);
  EXPECT_EQ(stateExitCode(MainState::Prim), 3);
  EXPECT_EQ(stateExitCode(MainState::Second), 4);
}

}  // namespace
}  // namespace halo::core
