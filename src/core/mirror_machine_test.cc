#include "core/mirror_machine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>

namespace halo::core {
namespace {

TEST(DataGenerationTest, Compare) {
  DataGeneration a{.current = 5, .parent = 1};
  DataGeneration b{.current = 5, .parent = 1};
  EXPECT_EQ(compareGenerations(a, b), GenerationOrder::Same);
  DataGeneration c{.current = 9, .parent = 5};
  EXPECT_EQ(compareGenerations(c, a), GenerationOrder::LocalNewer);
  EXPECT_EQ(compareGenerations(a, c), GenerationOrder::RemoteNewer);
  DataGeneration d{.current = 11, .parent = 5};
  EXPECT_EQ(compareGenerations(c, d), GenerationOrder::SplitBrain);
  DataGeneration e{.current = 12, .parent = 7};
  EXPECT_EQ(compareGenerations(c, e), GenerationOrder::Unrelated);
  EXPECT_EQ(compareGenerations(DataGeneration{}, a), GenerationOrder::RemoteNewer);
}

TEST(DataGenerationTest, EnterAloneDrawsOnceUntilShared) {
  DataGeneration g{.current = 5, .parent = 1, .uptodate = true};
  DataGeneration n = enterAlone(g, 42);
  EXPECT_EQ(n.current, 42u);
  EXPECT_EQ(n.parent, 5u);
  EXPECT_TRUE(n.alone);
  EXPECT_EQ(enterAlone(n, 77).current, 42u);  // already writing alone: same generation
  EXPECT_NE(enterAlone(DataGeneration{}, 0).current, 0u);
}

// Two machines joined by an instant network; scripts and resyncs finish at once.
class Pair {
 public:
  explicit Pair(bool failover = true, DefaultPrim dp = DefaultPrim::Alone, std::string dpn = "",
                bool witness = false, bool gated = false, bool replicated = false) {
    for (int i = 0; i < 2; ++i) {
      cfg_[i].local_node = kNames[i];
      cfg_[i].peer_node = kNames[1 - i];
      cfg_[i].failover = failover;
      cfg_[i].default_prim = dp;
      cfg_[i].default_prim_node = dpn;
      cfg_[i].witness = witness;
      cfg_[i].gated = gated;
      cfg_[i].replicated = replicated;
      cfg_[i].random = [this] { return ++rnd_ * 1000; };
      m_[i] = std::make_unique<MirrorMachine>(cfg_[i], DataGeneration{});
    }
  }
  static constexpr const char* kNames[2] = {"alpha", "beta"};

  MirrorMachine& m(int i) { return *m_[i]; }
  Status cmd(int i, MirrorCommand c) {
    auto r = m_[i]->command(c);
    if (!r.ok()) {
      return r.status();
    }
    feed(i, *r);
    run();
    return okStatus();
  }
  void feed(int i, const std::vector<MirrorAction>& actions) {
    for (const auto& a : actions) {
      if (auto* r = std::get_if<RunScript>(&a)) {
        std::string c = r->name;
        for (const auto& x : r->args) {
          c += " " + x;
        }
        calls[i].push_back(c);
        all_calls.push_back(std::string(kNames[i]) + ": " + c);
        work_.push_back([this, i] { feed(i, m_[i]->scriptFinished(ScriptOutcome{})); });
      } else if (auto* l = std::get_if<LogLine>(&a)) {
        logs[i].push_back(l->message);
      } else if (auto* p = std::get_if<PersistGeneration>(&a)) {
        persisted[i] = p->record;
      } else if (std::holds_alternative<SendHeartbeatNow>(a)) {
        if (linked) {
          work_.push_back([this, i] { deliver(i); });
        }
      } else if (std::holds_alternative<AskWitness>(a)) {
        work_.push_back([this, i] { feed(i, m_[i]->witnessResult(witness_ok[i])); });
      } else if (auto* s = std::get_if<StartResync>(&a)) {
        resyncs[i].push_back(*s);
        if (auto_resync) {
          uint64_t id = s->id;
          work_.push_back([this, i, id] { feed(i, m_[i]->resyncDone(id, true)); });
        }
      } else if (auto* rep = std::get_if<Replicate>(&a)) {
        const std::string c =
            rep->role == ReplicationRole::Primary ? "replicate primary" : "replicate off";
        calls[i].push_back(c);
        all_calls.push_back(std::string(kNames[i]) + ": " + c);
        const uint64_t id = rep->id;
        work_.push_back(
            [this, i, id] { feed(i, m_[i]->replicationReady(id, replicate_ok, "mount refused")); });
      } else if (std::holds_alternative<AddVip>(a)) {
        calls[i].push_back("addvip");
        all_calls.push_back(std::string(kNames[i]) + ": addvip");
      } else if (std::holds_alternative<RemoveVip>(a)) {
        calls[i].push_back("removevip");
        all_calls.push_back(std::string(kNames[i]) + ": removevip");
      }
    }
  }
  std::vector<StartResync> resyncs[2];
  void deliver(int from) {
    if (linked && !dead[from] && !dead[1 - from]) {
      feed(1 - from, m_[1 - from]->heartbeatReceived(m_[from]->heartbeat()));
    }
  }
  void run() {
    for (int guard = 0; !work_.empty() && guard < 10000; ++guard) {
      auto w = std::move(work_.front());
      work_.pop_front();
      w();
    }
  }
  // One heartbeat period: both send; a side that received nothing reports the loss.
  void pulse() {
    for (int i = 0; i < 2; ++i) {
      if (!dead[i] && m_[i]->state().main != MainState::Stop) {
        work_.push_back([this, i] { deliver(i); });
      }
    }
    run();
  }
  void lose(int i) {
    feed(i, m_[i]->heartbeatsLost());
    run();
  }
  void crash(int i) {
    dead[i] = true;
    m_[i] = std::make_unique<MirrorMachine>(cfg_[i], persisted[i]);
  }
  void reboot(int i) { dead[i] = false; }
  // The runtime restarted (the machine is new; the application and the peer went on).
  void respawn(int i, ModuleState persisted_state) {
    m_[i] = std::make_unique<MirrorMachine>(cfg_[i], persisted[i]);
    feed(i, m_[i]->recover(persisted_state));
    run();
  }
  ModuleState st(int i) { return m_[i]->state(); }
  bool logged(int i, const std::string& s) {
    for (const auto& l : logs[i]) {
      if (l.find(s) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
  // Prim on alpha, start on beta: the usual PRIM/SECOND pair.
  void makePair() {
    ASSERT_TRUE(cmd(0, MirrorCommand::Prim).ok());
    lose(0);
    ASSERT_TRUE(cmd(1, MirrorCommand::Start).ok());
    pulse();
    pulse();
    ASSERT_EQ(st(0), (ModuleState{MainState::Prim, Readiness::Ready}));
    ASSERT_EQ(st(1), (ModuleState{MainState::Second, Readiness::Ready}));
  }

  bool linked = true;
  bool auto_resync = true;
  bool replicate_ok = true;
  bool dead[2] = {false, false};
  bool witness_ok[2] = {true, true};
  std::vector<std::string> calls[2];
  std::vector<std::string> all_calls;
  std::vector<std::string> logs[2];
  DataGeneration persisted[2];

 private:
  MirrorConfig cfg_[2];
  std::unique_ptr<MirrorMachine> m_[2];
  std::deque<std::function<void()>> work_;
  uint64_t rnd_ = 0;
};

const ModuleState kPrimReady{MainState::Prim, Readiness::Ready};
const ModuleState kAloneReady{MainState::Alone, Readiness::Ready};
const ModuleState kSecondReady{MainState::Second, Readiness::Ready};
const ModuleState kWaitNotReady{MainState::Wait, Readiness::NotReady};
const ModuleState kStop{MainState::Stop, Readiness::NotReady};

TEST(MirrorMachineTest, FirstStartOnBothWaits) {
  Pair p;
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Start).ok());
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Start).ok());
  p.pulse();
  EXPECT_EQ(p.st(0), kWaitNotReady);
  EXPECT_EQ(p.st(1), kWaitNotReady);
  EXPECT_TRUE(p.logged(0, "rfs_notuptodate_server"));
}

TEST(MirrorMachineTest, FirstStartAloneWaitsAfterTimeout) {
  Pair p;
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Start).ok());
  p.lose(0);
  EXPECT_EQ(p.st(0), kWaitNotReady);
  EXPECT_TRUE(p.logged(0, "wait for the start of the remote server"));
}

TEST(MirrorMachineTest, PrimThenStartMakesPrimSecondWithScriptOrder) {
  Pair p;
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Prim).ok());
  EXPECT_EQ(p.st(0), kAloneReady);  // prim does not wait for the peer
  std::vector<std::string> expect = {"transition STOP WAIT start",  "prestart STOP WAIT start",
                                     "transition WAIT ALONE start", "start_both WAIT ALONE start",
                                     "start_sec WAIT ALONE start",  "addvip",
                                     "start_prim WAIT ALONE start"};
  EXPECT_EQ(p.calls[0], expect);
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Start).ok());
  EXPECT_EQ(p.st(1), kSecondReady);
  EXPECT_EQ(p.st(0), kPrimReady);
  EXPECT_TRUE(p.logged(1, "Reintegration ended"));
  EXPECT_EQ(p.m(1).generation().current, p.m(0).generation().current);
  EXPECT_EQ(p.calls[0].back(), "transition ALONE PRIM start");
}

TEST(MirrorMachineTest, SecondStaysTransientUntilResyncDone) {
  Pair p;
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Prim).ok());
  p.auto_resync = false;
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Start).ok());
  EXPECT_EQ(p.st(1), (ModuleState{MainState::Second, Readiness::Transient}));
  EXPECT_EQ(p.st(0), kAloneReady);
}

// A secondary that comes back after a clean stop shares the primary's history: the
// replication layer may copy only the changes (it checks its sync points); split brain only
// when both wrote alone.
TEST(MirrorMachineTest, AReturningSecondaryMayGetChangesOnly) {
  Pair p(true, DefaultPrim::Alone, "", false, false, true);
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Prim).ok());
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Start).ok());
  ASSERT_EQ(p.resyncs[1].size(), 1u);
  EXPECT_TRUE(p.resyncs[1][0].full);  // it never held the data
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Stop).ok());
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Start).ok());
  ASSERT_EQ(p.resyncs[1].size(), 2u);
  EXPECT_FALSE(p.resyncs[1][1].full);
  EXPECT_FALSE(p.resyncs[1][1].split_brain);
}

TEST(MirrorMachineTest, StopOfPrimFailsOverAfterStopScripts) {
  Pair p;
  p.makePair();
  p.all_calls.clear();
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Stop).ok());
  EXPECT_EQ(p.st(0), kStop);
  EXPECT_EQ(p.st(1), kAloneReady);
  EXPECT_TRUE(p.logged(1, "Action alone called by heart: remote stop"));
  // alpha's stop_prim and VIP removal come before beta's VIP and start_prim.
  auto pos = [&](const std::string& s) {
    return std::find(p.all_calls.begin(), p.all_calls.end(), s) - p.all_calls.begin();
  };
  EXPECT_LT(pos("alpha: removevip"), pos("beta: addvip"));
  EXPECT_LT(pos("alpha: stop_prim force PRIM STOP stop"),
            pos("beta: start_prim SECOND ALONE start"));
  // Normal restart of both later: the up-to-date node (beta) becomes primary.
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Stop).ok());
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Start).ok());
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Start).ok());
  p.pulse();
  p.pulse();
  EXPECT_EQ(p.st(1), kPrimReady);
  EXPECT_EQ(p.st(0), kSecondReady);
}

TEST(MirrorMachineTest, NotUptodateNodeWaitsWhileOtherStopped) {
  Pair p;
  p.makePair();
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Stop).ok());  // beta misses the next writes
  EXPECT_EQ(p.st(0), kAloneReady);
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Stop).ok());
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Start).ok());
  p.lose(1);
  EXPECT_EQ(p.st(1), kWaitNotReady);
  EXPECT_FALSE(p.m(1).generation().uptodate);
  // Sacrificing alpha's data: stop then prim on beta.
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Stop).ok());
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Prim).ok());
  EXPECT_EQ(p.st(1), kAloneReady);
}

TEST(MirrorMachineTest, PowerOffOfPrimaryMakesSecondAlone) {
  Pair p;
  p.makePair();
  p.crash(0);
  p.lose(1);
  EXPECT_EQ(p.st(1), kAloneReady);
  EXPECT_TRUE(p.logged(1, "Action alone called by heart: no heartbeat"));
  // The former primary comes back: it becomes secondary (no automatic failback).
  p.reboot(0);
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Start).ok());
  p.pulse();
  p.pulse();
  EXPECT_EQ(p.st(0), kSecondReady);
  EXPECT_EQ(p.st(1), kPrimReady);
}

TEST(MirrorMachineTest, SecondaryLossLeavesPrimaryAlone) {
  Pair p;
  p.makePair();
  const uint64_t shared = p.m(0).generation().current;
  p.crash(1);
  p.lose(0);
  EXPECT_EQ(p.st(0), kAloneReady);
  EXPECT_EQ(p.m(0).generation().parent, shared);
  EXPECT_EQ(std::count(p.calls[0].begin(), p.calls[0].end(), "addvip"), 1);
}

TEST(MirrorMachineTest, RestartIsLocal) {
  Pair p;
  p.makePair();
  p.calls[1].clear();
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Restart).ok());
  EXPECT_EQ(p.st(0), kPrimReady);
  EXPECT_EQ(p.st(1), kSecondReady);
  EXPECT_TRUE(p.calls[1].empty());
  EXPECT_NE(std::find(p.calls[0].begin(), p.calls[0].end(), "start_prim PRIM PRIM restart"),
            p.calls[0].end());
}

TEST(MirrorMachineTest, StopstartFailsOver) {
  Pair p;
  p.makePair();
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Stopstart).ok());
  p.pulse();
  p.pulse();
  EXPECT_EQ(p.st(0), kSecondReady);
  EXPECT_EQ(p.st(1), kPrimReady);
}

TEST(MirrorMachineTest, SwapStopsPrimaryBeforeStartingSecondary) {
  Pair p;
  p.makePair();
  EXPECT_FALSE(p.cmd(1, MirrorCommand::Swap).ok());
  p.all_calls.clear();
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Swap).ok());
  p.pulse();
  p.pulse();
  EXPECT_EQ(p.st(0), kSecondReady);
  EXPECT_EQ(p.st(1), kPrimReady);
  auto pos = [&](const std::string& s) {
    return std::find(p.all_calls.begin(), p.all_calls.end(), s) - p.all_calls.begin();
  };
  EXPECT_LT(pos("alpha: stop_prim force PRIM SECOND swap"),
            pos("beta: start_prim SECOND ALONE start"));
}

TEST(MirrorMachineTest, FailoverOffWaits) {
  Pair p(false);
  p.makePair();
  p.crash(0);
  p.lose(1);
  EXPECT_EQ(p.st(1), kWaitNotReady);
  EXPECT_TRUE(p.logged(1, "Failover-off configured"));
  // Only prim promotes.
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Stop).ok());
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Prim).ok());
  EXPECT_EQ(p.st(1), kAloneReady);
}

TEST(MirrorMachineTest, DefaultPrimNodeSwapsBack) {
  Pair p(true, DefaultPrim::Node, "alpha");
  p.makePair();
  p.crash(0);
  p.lose(1);
  EXPECT_EQ(p.st(1), kAloneReady);
  p.reboot(0);
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Start).ok());
  for (int i = 0; i < 4; ++i) {
    p.pulse();
  }
  EXPECT_EQ(p.st(0), kPrimReady);
  EXPECT_EQ(p.st(1), kSecondReady);
  EXPECT_TRUE(p.logged(1, "Transition SWAP from defaultprim"));
}

TEST(MirrorMachineTest, SplitBrainWithoutWitnessFormerPrimaryStays) {
  Pair p;
  p.makePair();
  p.linked = false;
  p.lose(0);
  p.lose(1);
  EXPECT_EQ(p.st(0), kAloneReady);
  EXPECT_EQ(p.st(1), kAloneReady);
  EXPECT_EQ(compareGenerations(p.m(0).generation(), p.m(1).generation()),
            GenerationOrder::SplitBrain);
  p.linked = true;
  for (int i = 0; i < 4; ++i) {
    p.pulse();
  }
  EXPECT_TRUE(p.logged(0, "Split brain recovery: staying alone"));
  EXPECT_TRUE(p.logged(1, "Split brain recovery: exiting alone"));
  EXPECT_EQ(p.st(0), kPrimReady);
  EXPECT_EQ(p.st(1), kSecondReady);
}

TEST(MirrorMachineTest, SplitBrainWithWitnessIsolatedSideWaits) {
  Pair p(true, DefaultPrim::Alone, "", true);
  p.makePair();
  p.linked = false;
  p.witness_ok[0] = false;
  p.lose(0);
  p.lose(1);
  EXPECT_EQ(p.st(0), kWaitNotReady);
  EXPECT_EQ(p.st(1), kAloneReady);
  EXPECT_TRUE(p.logged(0, "splitbrain_failure"));
  p.linked = true;
  p.pulse();
  p.pulse();
  p.pulse();
  EXPECT_EQ(p.st(0), kSecondReady);
  EXPECT_EQ(p.st(1), kPrimReady);
}

TEST(MirrorMachineTest, PrimRefusedAfterInterruptedResyncPrimforceForces) {
  Pair p;
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Prim).ok());
  p.auto_resync = false;
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Start).ok());
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Stop).ok());
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Stop).ok());
  Status s = p.cmd(1, MirrorCommand::Prim);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("primforce"), std::string::npos);
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Primforce).ok());
  EXPECT_EQ(p.st(1), kAloneReady);
}

TEST(MirrorMachineTest, SecondCommandNeverPromotes) {
  Pair p;
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Second).ok());
  p.lose(0);
  EXPECT_EQ(p.st(0), kWaitNotReady);
}

TEST(MirrorMachineTest, DoublePowerOutageFirstRebootedWaits) {
  Pair p;
  p.makePair();
  p.crash(0);
  p.crash(1);
  p.reboot(0);
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Start).ok());
  p.lose(0);
  EXPECT_EQ(p.st(0), kWaitNotReady);  // unclean stop: it does not know it is up to date
  p.reboot(1);
  ASSERT_TRUE(p.cmd(1, MirrorCommand::Start).ok());
  p.pulse();
  p.pulse();
  p.pulse();
  EXPECT_TRUE((p.st(0) == kPrimReady && p.st(1) == kSecondReady) ||
              (p.st(1) == kPrimReady && p.st(0) == kSecondReady));
}

TEST(MirrorMachineTest, BusyRefusesCommandsAndForcestopKills) {
  Pair p;
  auto r = p.m(0).command(MirrorCommand::Start);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(p.m(0).busy());
  EXPECT_FALSE(p.m(0).command(MirrorCommand::Stop).ok());
  auto f = p.m(0).command(MirrorCommand::Forcestop);
  ASSERT_TRUE(f.ok());
  bool killed = false;
  for (const auto& a : *f) {
    killed = killed || std::holds_alternative<KillScript>(a);
  }
  EXPECT_TRUE(killed);
}

TEST(MirrorMachineTest, RuleWaitOnPrimaryFailsOverAndWakeupRejoins) {
  Pair p;
  p.makePair();
  // The interface checker's rule: the primary leaves its role, its peer takes over.
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Wait).ok());
  EXPECT_EQ(p.st(0), kWaitNotReady);
  EXPECT_TRUE(p.m(0).heldByRule());
  p.pulse();
  EXPECT_EQ(p.st(1), kAloneReady);
  EXPECT_TRUE(p.logged(1, "Action alone called by heart: remote stop"));
  // A held node takes no role, even when its peer is primary, until the rule clears.
  p.pulse();
  EXPECT_EQ(p.st(0), kWaitNotReady);
  EXPECT_FALSE(p.m(0).check(MirrorCommand::Wait).ok());
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Wakeup).ok());
  p.pulse();
  p.pulse();
  EXPECT_EQ(p.st(0), kSecondReady);
  EXPECT_EQ(p.st(1), kPrimReady);
  EXPECT_FALSE(p.m(0).check(MirrorCommand::Wakeup).ok());
}

TEST(MirrorMachineTest, GatedStartDecidesOnlyAfterWakeup) {
  Pair p(true, DefaultPrim::Alone, "", false, /*gated=*/true);
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Prim).ok());
  p.lose(0);
  // The checkers have not reported: the start stays in WAIT (Transient), no role, no VIP.
  EXPECT_EQ(p.st(0), (ModuleState{MainState::Wait, Readiness::Transient}));
  EXPECT_TRUE(p.calls[0].end() ==
              std::find(p.calls[0].begin(), p.calls[0].end(), std::string("addvip")));
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Wakeup).ok());
  EXPECT_EQ(p.st(0), kAloneReady);
  EXPECT_FALSE(p.m(0).check(MirrorCommand::Wakeup).ok());  // the gate is open
}

TEST(MirrorMachineTest, RecoverKeepsAStableRoleAndRestartsATransition) {
  Pair p;
  p.makePair();
  const size_t calls = p.calls[0].size();
  p.respawn(0, kPrimReady);
  EXPECT_EQ(p.st(0), kPrimReady);
  EXPECT_EQ(p.calls[0].size(), calls);  // the application was not touched
  p.pulse();
  EXPECT_EQ(p.st(0), kPrimReady);
  EXPECT_EQ(p.st(1), kSecondReady);
  // Killed between two states: everything is stopped (force) and the start decides again.
  p.respawn(0, ModuleState{MainState::Prim, Readiness::Transient});
  p.pulse();
  p.pulse();
  EXPECT_EQ(p.calls[0][calls], "stop_prim force PRIM STOP stop");
  EXPECT_TRUE(p.st(0) == kPrimReady || p.st(0) == kSecondReady) << p.st(0).describe();
}

TEST(MirrorMachineTest, FailoverToggleAppliesToTheNextLoss) {
  Pair p;
  p.makePair();
  p.m(1).setFailover(false);
  p.dead[0] = true;
  p.lose(1);
  EXPECT_EQ(p.st(1), kWaitNotReady);
  EXPECT_TRUE(p.logged(1, "Failover-off configured"));
}

}  // namespace
}  // namespace halo::core

namespace halo::core {
namespace {

size_t indexOf(const std::vector<std::string>& v, const std::string& prefix) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].rfind(prefix, 0) == 0) {
      return i;
    }
  }
  return v.size();
}

TEST(MirrorMachineReplicationTest, TheInterceptionComesBeforeTheApplicationAndGoesAfterIt) {
  Pair p(true, DefaultPrim::Alone, "", false, false, true);
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Prim).ok());
  ASSERT_EQ(p.st(0), kAloneReady);
  const auto& c = p.calls[0];
  ASSERT_LT(indexOf(c, "replicate primary"), c.size());
  EXPECT_LT(indexOf(c, "prestart"), indexOf(c, "replicate primary"));
  EXPECT_LT(indexOf(c, "replicate primary"), indexOf(c, "start_both"));
  EXPECT_LT(indexOf(c, "replicate primary"), indexOf(c, "start_prim"));
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Stop).ok());
  ASSERT_EQ(p.st(0), kStop);
  EXPECT_LT(indexOf(c, "stop_both force"), indexOf(c, "replicate off"));
  EXPECT_LT(indexOf(c, "replicate off"), indexOf(c, "transition ALONE STOP"));
}

TEST(MirrorMachineReplicationTest, AnInterceptionThatCannotStartStopsTheModule) {
  Pair p(true, DefaultPrim::Alone, "", false, false, true);
  p.replicate_ok = false;
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Prim).ok());
  EXPECT_EQ(p.st(0), kStop);
  EXPECT_TRUE(p.logged(0, "Replication cannot start: mount refused: stopping the module"));
  EXPECT_EQ(indexOf(p.calls[0], "start_prim"), p.calls[0].size());  // never started
}

TEST(MirrorMachineReplicationTest, ASecondaryThatLosesItsLinkResynchronizes) {
  Pair p(true, DefaultPrim::Alone, "", false, false, true);
  p.makePair();
  p.auto_resync = false;
  p.feed(1, p.m(1).replicationLost());
  p.run();
  EXPECT_EQ(p.st(1), (ModuleState{MainState::Second, Readiness::Transient}));
  EXPECT_TRUE(p.logged(1, "Replication link lost: resynchronizing"));
  EXPECT_FALSE(p.m(1).generation().uptodate);
  EXPECT_TRUE(p.m(1).generation().resync_interrupted);  // prim would be refused now
  p.pulse();
  // The primary sees an outdated secondary: it writes alone until the resync ends.
  EXPECT_EQ(p.st(0), kAloneReady);
}

TEST(MirrorMachineReplicationTest, ALossDuringAScriptIsAppliedOnceItEnds) {
  Pair p(true, DefaultPrim::Alone, "", false, false, true);
  p.makePair();
  p.auto_resync = false;  // the secondary's resync does not end: the primary stays alone
  auto r = p.m(0).command(MirrorCommand::Restart);
  ASSERT_TRUE(r.ok());
  p.feed(0, p.m(0).replicationLost());  // while stop_prim runs
  EXPECT_EQ(p.st(0).main, MainState::Prim);
  p.feed(0, *r);
  p.run();
  EXPECT_EQ(p.st(0), kAloneReady);
  EXPECT_TRUE(p.logged(0, "Replication to the secondary failed: continuing alone"));
}

TEST(MirrorMachineReplicationTest, SwapUnmountsBeforeTheOldPrimaryResyncs) {
  Pair p(true, DefaultPrim::Alone, "", false, false, true);
  p.makePair();
  ASSERT_TRUE(p.cmd(0, MirrorCommand::Swap).ok());
  p.pulse();
  p.pulse();
  p.pulse();
  EXPECT_EQ(p.st(1), kPrimReady);
  EXPECT_EQ(p.st(0), kSecondReady);
  const auto& c = p.all_calls;
  EXPECT_LT(indexOf(c, "alpha: stop_prim force"), indexOf(c, "alpha: replicate off"));
  EXPECT_LT(indexOf(c, "alpha: replicate off"), indexOf(c, "beta: replicate primary"));
  EXPECT_LT(indexOf(c, "beta: replicate primary"), indexOf(c, "beta: start_prim"));
}

}  // namespace
}  // namespace halo::core
