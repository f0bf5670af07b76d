#include "sim/mirror_sim.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <queue>
#include <random>

#include "core/mirror_machine.h"

namespace halo::sim {

namespace {

using core::DataGeneration;
using core::MainState;
using core::MirrorAction;
using core::MirrorCommand;
using core::MirrorConfig;
using core::MirrorHeartbeat;
using core::MirrorMachine;
using core::ModuleState;
using core::Readiness;

constexpr int64_t kPulse = 10;
constexpr int64_t kTimeout = 50;
constexpr int64_t kMaxDelay = 30;
constexpr const char* kNames[2] = {"alpha", "beta"};

enum class Kind { Pulse, Deliver, ScriptDone, ResyncDone, Witness, Op, ReplicateDone };

struct Event {
  int64_t t = 0;
  uint64_t seq = 0;
  Kind kind = Kind::Pulse;
  int node = 0;
  uint64_t incarnation = 0;  // events addressed to a machine die with it
  uint64_t id = 0;           // script token, resync id, heartbeat sequence
  uint64_t boot = 0;         // heartbeat sender's boot
  bool flag = false;         // witness reachable
  MirrorHeartbeat hb = {};
};
struct Later {
  bool operator()(const Event& a, const Event& b) const {
    return a.t != b.t ? a.t > b.t : a.seq > b.seq;
  }
};

struct Link {
  bool cut = false;
  double loss = 0;
  double dup = 0;
  int64_t max_delay = 5;
};

struct Node {
  std::unique_ptr<MirrorMachine> m;
  MirrorConfig cfg;
  DataGeneration persisted;
  bool up = true;
  uint64_t incarnation = 1;
  int64_t last_rx = 0;
  bool lost_reported = false;
  uint64_t script_token = 0;
  uint64_t hb_seq = 0;
  uint64_t rx_boot = 0;  // last accepted heartbeat from the peer: (boot, seq)
  uint64_t rx_seq = 0;
  bool witness_reach = true;
  bool rule_wait = false;  // a wait rule holds this node (interface down...)
  int64_t ver = 0;         // ground truth: the number of acknowledged writes this node's data holds
  bool was_primary_ready = false;
  bool was_primary = false;
  bool forked_with_data = false;          // became primary holding up-to-date data
  MainState last_role = MainState::Stop;  // the last non-primary state seen
  bool wrote_alone = false;               // wrote without its peer since they were last in sync
  bool last_uptodate = false;             // and whether its data was up to date then
  uint64_t sync_gen = 0;                  // as primary: the generation an in-sync secondary holds
};

bool primaryReady(const ModuleState& s) {
  return (s.main == MainState::Prim || s.main == MainState::Alone) &&
         s.readiness == Readiness::Ready;
}

class Sim {
 public:
  Sim(uint64_t seed, const ScenarioOptions& o) : rng_(seed), opts_(o) {
    const bool failover = coin(0.85);
    const bool witness = coin(0.3);
    const double r = uni01();
    core::DefaultPrim dp = r < 0.6
                               ? core::DefaultPrim::Alone
                               : (r < 0.8 ? core::DefaultPrim::Node : core::DefaultPrim::LastPrim);
    const std::string dpn = kNames[rng_() % 2];
    slow_scripts_ = coin(0.5);
    gated_ = coin(0.5);
    replicated_ = coin(0.5);
    for (int i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      n.cfg.local_node = kNames[i];
      n.cfg.peer_node = kNames[1 - i];
      n.cfg.failover = failover;
      n.cfg.witness = witness;
      n.cfg.default_prim = dp;
      n.cfg.default_prim_node = dpn;
      n.cfg.gated = gated_;
      n.cfg.replicated = replicated_;
      n.cfg.random = [this] { return rng_(); };
      n.m = std::make_unique<MirrorMachine>(n.cfg, n.persisted);
      push(Event{.t = static_cast<int64_t>(rng_() % kPulse), .kind = Kind::Pulse, .node = i});
    }
    note("config failover=" + std::to_string(failover) + " witness=" + std::to_string(witness) +
         " defaultprim=" + std::to_string(static_cast<int>(dp)) + " " + dpn +
         " slow_scripts=" + std::to_string(slow_scripts_) + " gated=" + std::to_string(gated_) +
         " replicated=" + std::to_string(replicated_));
  }

  ScenarioResult run() {
    int64_t t_op = 0;
    for (int i = 0; i < opts_.operations && result_.ok; ++i) {
      t_op += 1 + static_cast<int64_t>(rng_() % 40);
      push(Event{.t = t_op, .kind = Kind::Op});
    }
    runUntil(t_op + 1);
    if (result_.ok) {
      heal();
      runUntil(now_ + 120 * kPulse);
      checkConverged();
    }
    return result_;
  }

 private:
  bool coin(double p) { return uni01() < p; }
  double uni01() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  void push(Event e) {
    e.seq = ++seq_;
    q_.push(std::move(e));
  }
  void note(const std::string& s) {
    if (opts_.trace) {
      result_.trace.push_back("t=" + std::to_string(now_) + " " + s);
    }
  }
  void fail(const std::string& why) {
    if (result_.ok) {
      result_.ok = false;
      result_.failure = "t=" + std::to_string(now_) + ": " + why;
      note("INVARIANT BROKEN: " + why);
    }
  }
  std::string describe(int i) {
    const Node& n = nodes_[i];
    if (!n.up) {
      return std::string(kNames[i]) + "=DOWN";
    }
    const auto& g = n.m->generation();
    return std::string(kNames[i]) + "=" + n.m->state().describe() +
           (n.m->peerAlive() ? " alive" : " lost") + " gen=" + std::to_string(g.current % 1000) +
           "/" + std::to_string(g.parent % 1000) + (g.uptodate ? " U" : " u") +
           " e=" + std::to_string(g.role_epoch) + " ver=" + std::to_string(n.ver);
  }

  void runUntil(int64_t end) {
    while (!q_.empty() && result_.ok && q_.top().t <= end) {
      Event e = q_.top();
      q_.pop();
      now_ = e.t;
      ++result_.events;
      step(e);
      checkInvariants();
    }
    now_ = end;
  }

  void sendHeartbeat(int from) {
    Node& n = nodes_[from];
    const Link& l = links_[from];
    const uint64_t s = ++n.hb_seq;
    if (l.cut || coin(l.loss)) {
      return;
    }
    const int copies = coin(l.dup) ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      Event e{.t = now_ + 1 + static_cast<int64_t>(rng_() % l.max_delay),
              .kind = Kind::Deliver,
              .node = 1 - from,
              .id = s,
              .boot = n.incarnation,
              .hb = n.m->heartbeat()};
      e.incarnation = nodes_[1 - from].incarnation;
      push(std::move(e));
    }
  }

  void exec(int i, const std::vector<MirrorAction>& actions) {
    Node& n = nodes_[i];
    for (const auto& a : actions) {
      if (opts_.trace) {
        note(std::string("  ") + kNames[i] + " " + core::describeAction(a));
      }
      if (std::holds_alternative<core::RunScript>(a)) {
        n.script_token = ++tokens_;
        const int64_t d = slow_scripts_ ? static_cast<int64_t>(rng_() % 15) : 0;
        push(Event{.t = now_ + d,
                   .kind = Kind::ScriptDone,
                   .node = i,
                   .incarnation = n.incarnation,
                   .id = n.script_token});
      } else if (std::holds_alternative<core::KillScript>(a)) {
        n.script_token = 0;
      } else if (auto* p = std::get_if<core::PersistGeneration>(&a)) {
        n.persisted = p->record;
      } else if (std::holds_alternative<core::SendHeartbeatNow>(a)) {
        sendHeartbeat(i);
      } else if (std::holds_alternative<core::AskWitness>(a)) {
        push(Event{.t = now_ + 3,
                   .kind = Kind::Witness,
                   .node = i,
                   .incarnation = n.incarnation,
                   .flag = n.witness_reach});
      } else if (auto* rep = std::get_if<core::Replicate>(&a)) {
        // The replication process starts or stops, sometimes slowly, rarely not at all.
        push(Event{.t = now_ + static_cast<int64_t>(rng_() % 8),
                   .kind = Kind::ReplicateDone,
                   .node = i,
                   .incarnation = n.incarnation,
                   .id = rep->id,
                   .flag = !coin(0.02)});
      } else if (auto* r = std::get_if<core::StartResync>(&a)) {
        push(Event{.t = now_ + 5 + static_cast<int64_t>(rng_() % 40),
                   .kind = Kind::ResyncDone,
                   .node = i,
                   .incarnation = n.incarnation,
                   .id = r->id});
      }
    }
  }

  void step(const Event& e) {
    Node& n = nodes_[e.node];
    const bool for_machine = e.kind != Kind::Op && e.kind != Kind::Pulse;
    if (for_machine && (!n.up || e.incarnation != n.incarnation)) {
      return;
    }
    switch (e.kind) {
      case Kind::Pulse: {
        push(Event{.t = now_ + kPulse, .kind = Kind::Pulse, .node = e.node});
        if (!n.up) {
          return;
        }
        writes(e.node);
        if (!n.rule_wait && (gated_ || n.m->heldByRule()) &&
            n.m->check(MirrorCommand::Wakeup).ok()) {
          // The runtime's monitor, every period: no wait rule holds, so the start gate opens
          // and a node a rule held wakes up (Implicit_wakeup).
          auto out = n.m->command(MirrorCommand::Wakeup);
          exec(e.node, *out);
        }
        if (n.m->state().main != MainState::Stop) {
          sendHeartbeat(e.node);
        }
        if (!n.lost_reported && now_ - n.last_rx > kTimeout) {
          n.lost_reported = true;
          auto out = n.m->heartbeatsLost();
          if (opts_.trace && !out.empty()) {
            note(std::string(kNames[e.node]) + " heartbeats lost");
          }
          exec(e.node, out);
        }
        return;
      }
      case Kind::Deliver: {
        // The heart's replay protection: older or duplicate packets are dropped.
        if (e.boot < n.rx_boot || (e.boot == n.rx_boot && e.id <= n.rx_seq)) {
          return;
        }
        n.rx_boot = e.boot;
        n.rx_seq = e.id;
        n.last_rx = now_;
        n.lost_reported = false;
        auto out = n.m->heartbeatReceived(e.hb);
        if (opts_.trace && !out.empty()) {
          note(std::string(kNames[e.node]) + " heartbeat from peer " + e.hb.state.describe() +
               (e.hb.handover ? " handover" : ""));
        }
        exec(e.node, out);
        return;
      }
      case Kind::ScriptDone: {
        if (e.id != n.script_token) {
          return;
        }
        n.script_token = 0;
        core::ScriptOutcome o;
        if (coin(0.005)) {
          o.success = false;
          o.detail = "exit code 1";
        }
        exec(e.node, n.m->scriptFinished(o));
        return;
      }
      case Kind::ResyncDone: {
        Node& p = nodes_[1 - e.node];
        // The primary serves the resync while it is Ready (a stopping primary does not).
        const bool ok = p.up && primaryReady(p.m->state()) && !links_[1 - e.node].cut;
        const auto before = n.m->state();
        note(std::string(kNames[e.node]) + " resync done " + (ok ? "ok" : "failed"));
        exec(e.node, n.m->resyncDone(e.id, ok));
        if (ok && before.readiness == Readiness::Transient && n.m->generation().uptodate) {
          n.ver = p.ver;
          p.sync_gen = p.m->generation().current;
          n.wrote_alone = p.wrote_alone = false;
          exec(1 - e.node, p.m->peerResynced());
          diverged_ = false;
        }
        if (!ok) {
          // A failed resync is retried by the machine (a new StartResync).
        }
        return;
      }
      case Kind::Witness:
        note(std::string(kNames[e.node]) + " witness " + (e.flag ? "reachable" : "unreachable"));
        exec(e.node, n.m->witnessResult(e.flag));
        return;
      case Kind::ReplicateDone:
        note(std::string(kNames[e.node]) + " replication " + (e.flag ? "ready" : "failed"));
        exec(e.node, n.m->replicationReady(e.id, e.flag, "simulated failure"));
        return;
      case Kind::Op:
        randomOp();
        return;
    }
  }

  // Ground truth: a primary acknowledges writes. A secondary is in sync from the end of its
  // resync on (its start scripts may still run) and replication is synchronous then: when the
  // in-sync secondary becomes unreachable, the replication layer reports it (replicationLost)
  // and the primary writes on only in a new generation.
  void writes(int i) {
    Node& n = nodes_[i];
    Node& p = nodes_[1 - i];
    const ModuleState s = n.m->state();
    if (n.sync_gen != 0 && (!n.m->isPrimary() || n.sync_gen != n.m->generation().current)) {
      n.sync_gen = 0;
    }
    if (!primaryReady(s)) {
      return;
    }
    const bool in_sync = p.up && p.m->state().main == MainState::Second &&
                         p.m->generation().uptodate && !links_[i].cut;
    if (!in_sync && s.main == MainState::Alone) {
      n.wrote_alone = true;  // accepting writes without its peer (even if none came yet)
    }
    if (in_sync) {
      p.ver = ++n.ver;
    } else if (n.sync_gen != 0) {
      note(std::string(kNames[i]) + " replication lost");
      exec(i, n.m->replicationLost());
    } else if (s.main == MainState::Alone) {
      ++n.ver;
      n.wrote_alone = true;
    }
  }

  void command(int i, MirrorCommand c) {
    Node& n = nodes_[i];
    if (!n.up) {
      return;
    }
    auto r = n.m->command(c);
    note(std::string("op ") + core::mirrorCommandName(c) + " on " + kNames[i] +
         (r.ok() ? "" : " refused: " + r.status().message()));
    if (!r.ok()) {
      return;
    }
    if (c == MirrorCommand::Prim || c == MirrorCommand::Primforce || c == MirrorCommand::Second) {
      // The operator declares which node's data is the reference (prim: this one; second: the
      // peer's): the other's writes may be sacrificed until a resync merges the lineages.
      diverged_ = true;
    }
    if (c == MirrorCommand::Start || c == MirrorCommand::Prim || c == MirrorCommand::Second ||
        c == MirrorCommand::Primforce || c == MirrorCommand::Stopstart) {
      n.last_rx = now_;
      n.lost_reported = false;
    }
    exec(i, *r);
  }

  void randomOp() {
    const int i = static_cast<int>(rng_() % 2);
    Node& n = nodes_[i];
    const int r = static_cast<int>(rng_() % 100);
    if (!n.up) {
      if (r < 60) {
        reboot(i);
      }
      return;
    }
    if (r < 25) {
      command(i, MirrorCommand::Start);
    } else if (r < 33) {
      command(i, MirrorCommand::Stop);
    } else if (r < 37) {
      command(i, MirrorCommand::Restart);
    } else if (r < 42) {
      command(i, MirrorCommand::Stopstart);
    } else if (r < 44) {
      command(i, MirrorCommand::Forcestop);
    } else if (r < 50) {
      command(i, MirrorCommand::Swap);
    } else if (r < 53) {
      command(i, MirrorCommand::Prim);
    } else if (r < 56) {
      command(i, MirrorCommand::Second);
    } else if (r < 57) {
      command(i, MirrorCommand::Primforce);
    } else if (r < 62) {
      note(std::string("crash ") + kNames[i]);
      n.up = false;
      ++n.incarnation;
      n.script_token = 0;
      n.m = std::make_unique<MirrorMachine>(n.cfg, n.persisted);
    } else if (r < 68) {
      note("partition both ways");
      links_[0].cut = links_[1].cut = true;
    } else if (r < 73) {
      note(std::string("partition ") + kNames[i] + " -> peer");
      links_[i].cut = true;
    } else if (r < 84) {
      note("heal partitions");
      links_[0].cut = links_[1].cut = false;
    } else if (r < 90) {
      Link& l = links_[i];
      l.loss = coin(0.5) ? 0 : uni01() * 0.5;
      l.dup = coin(0.5) ? 0 : 0.2;
      l.max_delay = 1 + static_cast<int64_t>(rng_() % kMaxDelay);
      note(std::string("link ") + kNames[i] + " -> peer loss=" + std::to_string(l.loss) +
           " delay<=" + std::to_string(l.max_delay));
    } else if (r < 92) {
      // A failover rule's wait (interface down...) holds the node until its wakeup.
      n.rule_wait = !n.rule_wait;
      note(std::string("rule wait on ") + kNames[i] + ": " + std::to_string(n.rule_wait));
      if (n.rule_wait) {
        command(i, MirrorCommand::Wait);
      } else if (n.m->heldByRule()) {
        command(i, MirrorCommand::Wakeup);
      }
    } else if (r < 94) {
      n.witness_reach = !n.witness_reach;
      note(std::string("witness reachable from ") + kNames[i] + ": " +
           std::to_string(n.witness_reach));
    } else {
      // Wait: nothing happens.
    }
  }

  void reboot(int i) {
    Node& n = nodes_[i];
    note(std::string("reboot ") + kNames[i]);
    n.up = true;
    n.last_rx = now_;
    n.lost_reported = false;
    if (coin(0.7)) {
      command(i, MirrorCommand::Start);
    }
  }

  void heal() {
    note("HEAL: no more faults");
    for (int i = 0; i < 2; ++i) {
      links_[i] = Link{};
      nodes_[i].rule_wait = false;
      if (nodes_[i].up && nodes_[i].m->heldByRule()) {
        command(i, MirrorCommand::Wakeup);
      }
      if (!nodes_[i].up) {
        reboot(i);
      }
    }
  }

  void checkInvariants() {
    Node& a = nodes_[0];
    Node& b = nodes_[1];
    const bool a_p = a.up && a.m->isPrimary();
    const bool b_p = b.up && b.m->isPrimary();
    for (Node* n : {&a, &b}) {
      if (n->up && n->m->isPrimary() && !n->was_primary) {
        n->forked_with_data = n->last_uptodate || n->last_role == MainState::Stop;
      }
      if (n->up && n->m->state().main == MainState::Alone && n->forked_with_data) {
        n->wrote_alone = true;  // forked a generation of its own, even before any write
      }
    }
    if (a.wrote_alone && b.wrote_alone) {
      diverged_ = true;  // both wrote alone since they last were in sync: a split brain
    }
    if (a_p && b_p) {
      // Split brain (allowed without a witness, or caused by prim): the two data lineages
      // diverge, and the writes of the sacrificed side are not kept (DESIGN 5.6 saves them
      // aside). The data check resumes once a resync has merged the lineages again.
      diverged_ = true;
    }
    const bool both_ready =
        a.up && b.up && primaryReady(a.m->state()) && primaryReady(b.m->state());
    const bool flowing = both_ready && a.m->peerAlive() && b.m->peerAlive();
    if (flowing && a.m->peer() && b.m->peer() && primaryReady(a.m->peer()->state) &&
        primaryReady(b.m->peer()->state) && !a.m->busy() && !b.m->busy()) {
      fail("two idle primaries that both see each other: " + describe(0) + "; " + describe(1));
    }
    if (flowing) {
      if (dual_since_ < 0) {
        dual_since_ = now_;
      } else if (now_ - dual_since_ > kTimeout + kMaxDelay) {
        fail("two primaries while heartbeats flow both ways: " + describe(0) + "; " + describe(1));
      }
    } else {
      dual_since_ = -1;
    }
    for (int i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      const bool pr = n.up && primaryReady(n.m->state());
      if (n.up && !n.m->isPrimary()) {
        n.last_role = n.m->state().main;
        n.last_uptodate = n.m->generation().uptodate;
      }
      const bool primary_now = n.up && n.m->isPrimary();
      if (primary_now && !n.was_primary && n.last_role == MainState::Second && n.last_uptodate &&
          !n.m->peerAlive() && n.ver < nodes_[1 - i].ver) {
        // A failover on heartbeat loss while the other side wrote on (asymmetric isolation):
        // the split brain of reference 2.3, allowed without a witness that says otherwise.
        diverged_ = true;
      }
      if (pr && !n.was_primary_ready) {
        if (!n.m->generation().uptodate) {
          fail(std::string("primary without up-to-date data: ") + describe(i));
        }
        if (!diverged_ && n.ver < nodes_[1 - i].ver) {
          fail(std::string("primary lost acknowledged writes: ") + describe(i) + "; " +
               describe(1 - i));
        }
      }
      n.was_primary_ready = pr;
      n.was_primary = primary_now;
    }
  }

  void checkConverged() {
    const ModuleState s0 = nodes_[0].m->state();
    const ModuleState s1 = nodes_[1].m->state();
    note("END " + describe(0) + "; " + describe(1));
    if (nodes_[0].m->busy() || nodes_[1].m->busy()) {
      fail("a node is still busy at the end: " + describe(0) + "; " + describe(1));
      return;
    }
    auto legal = [](ModuleState x, ModuleState y) {
      const ModuleState prim{MainState::Prim, Readiness::Ready};
      const ModuleState second{MainState::Second, Readiness::Ready};
      const ModuleState alone{MainState::Alone, Readiness::Ready};
      const ModuleState wait{MainState::Wait, Readiness::NotReady};
      const ModuleState stop{MainState::Stop, Readiness::NotReady};
      return (x == prim && y == second) || (x == alone && (y == stop || y == wait)) ||
             (x == stop && (y == stop || y == wait)) || (x == wait && y == wait);
    };
    if (!legal(s0, s1) && !legal(s1, s0)) {
      fail("did not converge to a legal pair: " + describe(0) + "; " + describe(1));
    }
    result_.converged_pair = (s0.main == MainState::Prim || s1.main == MainState::Prim);
  }

  std::mt19937_64 rng_;
  ScenarioOptions opts_;
  ScenarioResult result_;
  Node nodes_[2];
  Link links_[2];
  std::priority_queue<Event, std::vector<Event>, Later> q_;
  int64_t now_ = 0;
  uint64_t seq_ = 0;
  uint64_t tokens_ = 0;
  bool slow_scripts_ = false;
  bool gated_ = false;  // starts wait for the monitor's gate (as in the runtime)
  bool replicated_ = false;  // <rfs>: Replicate steps, answered after a delay
  int64_t dual_since_ = -1;
  bool diverged_ = false;
};

}  // namespace

ScenarioResult runScenario(uint64_t seed, const ScenarioOptions& options) {
  Sim sim(seed, options);
  return sim.run();
}

}  // namespace halo::sim
