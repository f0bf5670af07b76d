#include "core/errd_decision.h"

#include <gtest/gtest.h>

namespace halo::core {
namespace {

config::ProcConfig proc(const std::string& name) {
  config::ProcConfig p;
  p.name = name;
  return p;
}

const std::vector<ProcEntry> kTable = {
    {1, "systemd", "/sbin/init splash"},
    {2, "kthreadd", ""},
    {100, "postgres", "/usr/lib/postgresql/15/bin/postgres -D /var/lib/pg"},
    {101, "postgres", "postgres: checkpointer"},
    {200, "java_applicatio", "/usr/bin/java_application_server --port 8080"},
    {300, "worker", "worker --queue high"},
    {301, "worker", "worker --queue low"},
};

TEST(ErrdMatchTest, NameMatchesCommExactly) {
  EXPECT_EQ(countMatches(proc("postgres"), kTable), 2);
  EXPECT_EQ(countMatches(proc("postgre"), kTable), 0);   // no prefix match
  EXPECT_EQ(countMatches(proc("kthreadd"), kTable), 1);  // kernel threads count by comm
}

TEST(ErrdMatchTest, LongNamesCompareTheirFirst15Characters) {
  EXPECT_EQ(countMatches(proc("java_application_server"), kTable), 1);
  EXPECT_EQ(countMatches(proc("java_applicatio"), kTable), 1);
  EXPECT_EQ(countMatches(proc("java_applicatioX"), kTable), 1);  // truncated like comm
}

TEST(ErrdMatchTest, NameregexReplacesTheName) {
  auto p = proc("db");  // only the resource name now
  p.nameregex = "^post(gres|master)$";
  EXPECT_EQ(countMatches(p, kTable), 2);
  p.nameregex = "^(worker|systemd)$";
  EXPECT_EQ(countMatches(p, kTable), 3);
  p.nameregex = "gre";  // unanchored: searched anywhere
  EXPECT_EQ(countMatches(p, kTable), 2);
}

TEST(ErrdMatchTest, ArgregexMustAlsoMatch) {
  auto p = proc("worker");
  p.argregex = "--queue[[:space:]]+high";
  EXPECT_EQ(countMatches(p, kTable), 1);
  p = proc("postgres");
  p.argregex = "-D /var/lib/pg$";
  EXPECT_EQ(countMatches(p, kTable), 1);
  p.nameregex = "^w";
  p.argregex = "low";
  EXPECT_EQ(countMatches(p, kTable), 1);
}

TEST(ErrdMatchTest, ServicesAndBadPatternsMatchNothing) {
  auto svc = proc("postgres");
  svc.service = true;
  EXPECT_EQ(countMatches(svc, kTable), 0);
  auto bad = proc("worker");
  bad.argregex = "(";
  EXPECT_EQ(countMatches(bad, kTable), 0);
}

TEST(ErrdJudgeTest, AtleastActsOnceOnEnteringTheFailure) {
  const auto p = proc("postgres");
  ErrdProcState s;
  ErrdVerdict v = judge(p, 1, s);
  EXPECT_EQ(v.state, ResourceState::Up);
  EXPECT_FALSE(v.act);
  v = judge(p, 0, v.next);
  EXPECT_EQ(v.state, ResourceState::Down);
  EXPECT_TRUE(v.act);
  EXPECT_EQ(v.reason, "Process postgres not running (0 < atleast 1)");
  v = judge(p, 0, v.next);  // still failing: no second action
  EXPECT_EQ(v.state, ResourceState::Down);
  EXPECT_FALSE(v.act);
  v = judge(p, 2, v.next);
  EXPECT_EQ(v.state, ResourceState::Up);
  EXPECT_FALSE(v.act);
  v = judge(p, 0, v.next);  // a new failure acts again
  EXPECT_TRUE(v.act);
}

TEST(ErrdJudgeTest, FailingAtTheFirstPollActs) {
  ErrdVerdict v = judge(proc("postgres"), 0, {});
  EXPECT_EQ(v.state, ResourceState::Down);
  EXPECT_TRUE(v.act);
}

TEST(ErrdJudgeTest, AtleastAboveOneAndIgnored) {
  auto p = proc("worker");
  p.atleast = 3;
  ErrdVerdict v = judge(p, 2, {});
  EXPECT_EQ(v.state, ResourceState::Down);
  EXPECT_EQ(v.reason, "Process worker count 2 too low (2 < atleast 3)");
  p.atleast = -1;
  v = judge(p, 0, {});
  EXPECT_EQ(v.state, ResourceState::Up);
  EXPECT_FALSE(v.act);
}

TEST(ErrdJudgeTest, AtmaxNActsWhenReached) {
  auto p = proc("worker");
  p.atmax = 5;
  ErrdVerdict v = judge(p, 4, {});
  EXPECT_EQ(v.state, ResourceState::Up);
  v = judge(p, 5, v.next);
  EXPECT_EQ(v.state, ResourceState::Down);
  EXPECT_TRUE(v.act);
  EXPECT_EQ(v.reason, "Process worker count 5 reached atmax 5");
  v = judge(p, 6, v.next);
  EXPECT_EQ(v.state, ResourceState::Down);
  EXPECT_FALSE(v.act);
  v = judge(p, 0, v.next);  // from too many to too few: a different failure, act again
  EXPECT_TRUE(v.act);
  EXPECT_EQ(v.next.failure, ErrdFailure::TooFew);
}

TEST(ErrdJudgeTest, AtmaxZeroActsOnEveryStart) {
  auto p = proc("worker");
  p.atleast = -1;
  p.atmax = 0;
  ErrdVerdict v = judge(p, 1, {});  // running when monitoring begins: not a start
  EXPECT_EQ(v.state, ResourceState::Up);
  EXPECT_FALSE(v.act);
  v = judge(p, 2, v.next);
  EXPECT_TRUE(v.act);
  EXPECT_EQ(v.state, ResourceState::Down);
  EXPECT_EQ(v.reason, "Process worker started (count 1 -> 2, atmax 0)");
  v = judge(p, 3, v.next);  // still increasing: acts on each increase
  EXPECT_TRUE(v.act);
  v = judge(p, 3, v.next);
  EXPECT_FALSE(v.act);
  EXPECT_EQ(v.state, ResourceState::Up);
  v = judge(p, 0, v.next);
  EXPECT_FALSE(v.act);
  v = judge(p, 1, v.next);
  EXPECT_TRUE(v.act);
}

TEST(ErrdJudgeTest, StartAfterIgnoresTheFirstPolls) {
  auto p = proc("postgres");
  p.start_after = 3;
  ErrdVerdict v = judge(p, 0, {});
  EXPECT_EQ(v.state, ResourceState::Init);
  EXPECT_FALSE(v.act);
  v = judge(p, 0, v.next);
  EXPECT_EQ(v.state, ResourceState::Init);
  EXPECT_FALSE(v.act);
  v = judge(p, 0, v.next);  // poll 3 = after (3 - 1) polls
  EXPECT_EQ(v.state, ResourceState::Down);
  EXPECT_TRUE(v.act);
  p.start_after = 1;  // 1 and 0 both monitor from the first poll
  EXPECT_EQ(judge(p, 0, {}).state, ResourceState::Down);
}

TEST(ErrdJudgeTest, ServiceReasons) {
  auto p = proc("postgresql");
  p.service = true;
  ErrdVerdict v = judge(p, 0, {});
  EXPECT_EQ(v.reason, "Service postgresql not active (0 < atleast 1)");
  EXPECT_TRUE(v.act);
  v = judge(p, 1, v.next);
  EXPECT_EQ(v.state, ResourceState::Up);
  EXPECT_EQ(v.reason, "Service postgresql active");
}

TEST(ErrdClassTest, BuiltInAndCustomClasses) {
  ModulePhases prim{.pre_active = true, .prim_active = true, .both_active = true};
  ModulePhases second{
      .pre_active = true, .second_active = true, .sec_active = true, .both_active = true};
  ModulePhases waiting{.pre_active = true};
  const std::set<std::string> enabled = {"batch"};
  EXPECT_TRUE(classActive("prim", prim, {}));
  EXPECT_FALSE(classActive("prim", second, {}));
  EXPECT_TRUE(classActive("second", second, {}));
  EXPECT_TRUE(classActive("sec", second, {}));
  EXPECT_FALSE(classActive("sec", prim, {}));
  EXPECT_TRUE(classActive("both", prim, {}));
  EXPECT_FALSE(classActive("both", waiting, {}));
  EXPECT_TRUE(classActive("pre", waiting, {}));
  EXPECT_FALSE(classActive("pre", ModulePhases{}, {}));
  EXPECT_TRUE(classActive("batch", waiting, enabled));
  EXPECT_FALSE(classActive("batch", waiting, {}));
  EXPECT_FALSE(classActive("batch", ModulePhases{}, enabled));  // module stopped
}

}  // namespace
}  // namespace halo::core
