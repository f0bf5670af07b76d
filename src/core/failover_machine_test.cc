#include "core/failover_machine.h"

#include <gtest/gtest.h>

namespace halo::core {
namespace {

using std::chrono::seconds;

const MonotonicTime kT0{std::chrono::hours(1)};

RuleSet rules(std::string_view text) {
  Result<RuleSet> r = parseRules(text, 1, "test");
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : RuleSet{};
}

// Evaluates every 5 s like the default period and records what the machine decided.
class Harness {
 public:
  Harness(std::string_view text, Millis handle_time)
      : machine(rules(text), Millis(5000), handle_time) {}

  Decision step(ModuleSituation situation = {}) {
    Decision d = machine.evaluate(view, kT0 + elapsed, situation);
    elapsed += seconds(5);
    return d;
  }
  // The label of the action decided at this step, or "".
  std::string actionAt(ModuleSituation situation = {}) {
    Decision d = step(situation);
    return d.action ? d.action->label : "";
  }

  FailoverMachine machine;
  MapResourceView view;
  std::chrono::nanoseconds elapsed{0};
};

TEST(FailoverMachine, HandleTimeZeroActsAtOnce) {
  Harness h("c_db: if (custom.db == down) then restart();", Millis(0));
  h.view.set("custom.db", ResourceState::Up);
  EXPECT_TRUE(h.step().empty());
  h.view.set("custom.db", ResourceState::Down);
  Decision d = h.step();
  ASSERT_TRUE(d.action.has_value());
  EXPECT_EQ(d.action->label, "c_db");
  EXPECT_EQ(d.action->kind, ActionKind::Restart);
  EXPECT_FALSE(d.action->assignment.has_value());
  // Edge-triggered: no second restart while the condition keeps holding.
  EXPECT_EQ(h.actionAt(), "");
  EXPECT_EQ(h.actionAt(), "");
}

TEST(FailoverMachine, HandleTimeDebounces) {
  Harness h("c_db: if (custom.db == down) then restart();", Millis(15000));
  h.view.set("custom.db", ResourceState::Down);
  EXPECT_EQ(h.actionAt(), "");      // t0: first seen
  EXPECT_EQ(h.actionAt(), "");      // t0 + 5 s
  EXPECT_EQ(h.actionAt(), "");      // t0 + 10 s
  EXPECT_EQ(h.actionAt(), "c_db");  // t0 + 15 s: held for handle_time
  EXPECT_EQ(h.actionAt(), "");      // acted once
  // A flap restarts the measure.
  h.view.set("custom.db", ResourceState::Up);
  EXPECT_EQ(h.actionAt(), "");
  h.view.set("custom.db", ResourceState::Down);
  EXPECT_EQ(h.actionAt(), "");
  EXPECT_EQ(h.actionAt(), "");
  h.view.set("custom.db", ResourceState::Up);  // gone before handle_time
  EXPECT_EQ(h.actionAt(), "");
  h.view.set("custom.db", ResourceState::Down);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(h.actionAt(), "") << i;
  }
  EXPECT_EQ(h.actionAt(), "c_db");
}

TEST(FailoverMachine, MeasuresTimeNotEvaluations) {
  FailoverMachine m(rules("a: if (t.a == down) then stop();"), Millis(5000), Millis(15000));
  MapResourceView v;
  v.set("t.a", ResourceState::Down);
  EXPECT_FALSE(m.evaluate(v, kT0, {}).action);
  EXPECT_FALSE(m.evaluate(v, kT0 + Millis(14999), {}).action);
  EXPECT_TRUE(m.evaluate(v, kT0 + Millis(15000), {}).action);
}

TEST(FailoverMachine, FirstRuleInOrderWins) {
  Harness h("a: if (t.a == down) then restart();\nb: if (t.b == down) then stopstart();",
            Millis(0));
  h.view.set("t.a", ResourceState::Down);
  h.view.set("t.b", ResourceState::Down);
  EXPECT_EQ(h.actionAt(), "a");
  // The loser is still ready and acts next if its condition still holds.
  EXPECT_EQ(h.actionAt(), "b");
  EXPECT_EQ(h.actionAt(), "");
}

TEST(FailoverMachine, AssignmentsAllApplyAndDeferActions) {
  Harness h(
      "w: if (rfs.uptodate == down) then wait();\n"
      "f1: if (rfs.synced == up) then rfs.uptodate=up;\n"
      "f2: if (rfs.synced == up) then rfs.degraded=down;",
      Millis(0));
  h.view.set("rfs.uptodate", ResourceState::Down);
  h.view.set("rfs.synced", ResourceState::Up);
  Decision d = h.step();
  ASSERT_EQ(d.assignments.size(), 2u);
  EXPECT_EQ(d.assignments[0].label, "f1");
  EXPECT_EQ(d.assignments[0].kind, ActionKind::Assign);
  ASSERT_TRUE(d.assignments[0].assignment.has_value());
  EXPECT_EQ(d.assignments[0].assignment->target.toString(), "rfs.uptodate");
  EXPECT_EQ(d.assignments[0].assignment->state, ResourceState::Up);
  EXPECT_EQ(d.assignments[1].assignment->target.toString(), "rfs.degraded");
  EXPECT_FALSE(d.action.has_value());
  // The runtime applied the assignment: the wait no longer holds.
  h.view.set("rfs.uptodate", ResourceState::Up);
  d = h.step();
  EXPECT_TRUE(d.empty());
}

TEST(FailoverMachine, ImplicitWakeup) {
  Harness h("p_gw: if (ping.gw == down) then wait();\nc_x: if (custom.x == down) then stop();",
            Millis(10000));
  h.view.set("ping.gw", ResourceState::Down);
  EXPECT_EQ(h.actionAt(), "");
  EXPECT_EQ(h.actionAt(), "");
  Decision d = h.step();
  ASSERT_TRUE(d.action.has_value());
  EXPECT_EQ(d.action->kind, ActionKind::Wait);
  EXPECT_FALSE(d.wakeup);
  // The runtime put the module in WAIT: nothing more while the resource stays down.
  const ModuleSituation waiting{true, true};
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(h.step(waiting).empty()) << i;
  }
  // The wait rule no longer holds: wake up at once.
  h.view.set("ping.gw", ResourceState::Up);
  d = h.step(waiting);
  EXPECT_TRUE(d.wakeup);
  EXPECT_FALSE(d.action.has_value());
  EXPECT_EQ(std::string(kImplicitWakeupLabel), "Implicit_wakeup");
  // Not waiting by rule (e.g. WAIT at start): never a wakeup.
  EXPECT_FALSE(h.step().wakeup);
}

TEST(FailoverMachine, WaitingAfterRestartDoesNotWaitTwice) {
  // A runtime restarted while the module was waiting: the machine's memory is fresh.
  Harness h("p_gw: if (ping.gw == down) then wait();", Millis(0));
  h.view.set("ping.gw", ResourceState::Down);
  const ModuleSituation waiting{true, true};
  EXPECT_TRUE(h.step(waiting).empty());
  h.view.set("ping.gw", ResourceState::Up);
  EXPECT_TRUE(h.step(waiting).wakeup);
  // Woken and the fault comes back: a new edge, a new wait.
  h.view.set("ping.gw", ResourceState::Down);
  EXPECT_EQ(h.actionAt(), "p_gw");
}

TEST(FailoverMachine, ActionsDisabledReturnNothingAndForget) {
  Harness h("c_db: if (custom.db == down) then restart();", Millis(10000));
  h.view.set("custom.db", ResourceState::Down);
  const ModuleSituation disabled{false, false};
  EXPECT_EQ(h.actionAt(), "");
  EXPECT_EQ(h.actionAt(), "");
  EXPECT_TRUE(h.step(disabled).empty());
  EXPECT_TRUE(h.step(disabled).empty());
  // Re-enabled: the condition must hold for handle_time again.
  EXPECT_EQ(h.actionAt(), "");
  EXPECT_EQ(h.actionAt(), "");
  EXPECT_EQ(h.actionAt(), "c_db");
  // Disabled while waiting: no wakeup either.
  h.view.set("custom.db", ResourceState::Up);
  EXPECT_FALSE(h.step({true, false}).wakeup);
}

TEST(FailoverMachine, ResetForgetsFiredRules) {
  Harness h("c_db: if (custom.db == down) then restart();", Millis(0));
  h.view.set("custom.db", ResourceState::Down);
  EXPECT_EQ(h.actionAt(), "c_db");
  EXPECT_EQ(h.actionAt(), "");
  h.machine.reset();
  EXPECT_EQ(h.actionAt(), "c_db");
}

TEST(FailoverMachine, WaitInit) {
  FailoverMachine m(rules("p_gw: if (ping.gw == down) then wait();\n"
                          "i: if (intf.? == down) then wait();\n"
                          "t_web: if (tcp.web == down) then restart();"),
                    Millis(5000), Millis(15000));
  MapResourceView v;
  v.set("ping.gw", ResourceState::Init);
  v.set("intf.a", ResourceState::Up);
  v.set("intf.b", ResourceState::Init);
  v.set("tcp.web", ResourceState::Init);  // not read by a wait rule
  EXPECT_TRUE(m.waitInit(v));
  v.set("ping.gw", ResourceState::Down);
  EXPECT_TRUE(m.waitInit(v));
  v.set("intf.b", ResourceState::Up);
  EXPECT_FALSE(m.waitInit(v));
}

TEST(FailoverMachine, FromModuleConfig) {
  Result<config::ModuleConfig> c = config::parseModuleConfig(R"(<!DOCTYPE safe>
<safe>
  <service mode="light">
    <check>
      <ping ident="gw"><to addr="10.0.0.1"/></ping>
    </check>
    <failover period="2s" handle_time="4s"/>
  </service>
</safe>
)",
                                                             "userconfig.xml", {});
  ASSERT_TRUE(c.ok()) << c.status().message();
  Result<FailoverMachine> m = makeFailoverMachine(*c);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->period(), Millis(2000));
  EXPECT_EQ(m->handleTime(), Millis(4000));
  ASSERT_EQ(m->rules().size(), 1u);
  EXPECT_EQ(m->rules()[0].label, "p_gw");
  MapResourceView v;
  v.set("ping.gw", ResourceState::Init);
  EXPECT_TRUE(m->waitInit(v));

  c->failover.reset();
  m = makeFailoverMachine(*c);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->period(), Millis(5000));
  EXPECT_EQ(m->handleTime(), Millis(15000));
}

}  // namespace
}  // namespace halo::core
