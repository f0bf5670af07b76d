#pragma once
// MirrorMachine: the decisions of one node of a mirror module (reference 2.2-2.4, DESIGN 5) as a
// pure function of (state, event) -> actions. It never reads a clock, a socket or a file and
// never draws a random number itself: the driver measures the heartbeat timeout and reports
// it, sends heartbeats built by heartbeat(), runs the scripts and feeds back their outcome,
// persists the generation record it is given, asks the split-brain witness and runs resyncs.
// docs/mirror-state-machine.md has the transition table mapped to the reference's rows.
//
// Script groups (reference 4.1): start_prim/stop_prim in PRIM and ALONE; start_second/stop_second
// in SECOND; start_sec/stop_sec in SECOND and ALONE; start_both/stop_both in all three. Leaving a
// group calls its stop script twice (graceful, then "force"); entering calls its start script.
// Stop order: stop_prim, RemoveVip, stop_second, stop_sec, stop_both; start order: start_both,
// start_sec, start_second, AddVip, start_prim. Every script gets (current, next, action).

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/status.h"
#include "core/data_generation.h"
#include "core/light_machine.h"
#include "core/module_state.h"

namespace halo::core {

enum class MirrorCommand {
  Start,
  Stop,
  Restart,
  Stopstart,
  Forcestop,
  Swap,
  Prim,
  Second,
  Primforce,
  Wait,   // a failover rule (interface checker...): leave the role, WAIT (NotReady)
  Wakeup  // the rule cleared (Implicit_wakeup), or the start gate opened
};
const char* mirrorCommandName(MirrorCommand c);

enum class DefaultPrim { Alone, Node, LastPrim };

namespace mirror_internal {
// PRIM and ALONE: the states that run the application and hold the VIPs.
inline bool primaryState(MainState s) { return s == MainState::Prim || s == MainState::Alone; }
}  // namespace mirror_internal

struct MirrorConfig {
  std::string local_node;
  std::string peer_node;
  bool failover = true;
  DefaultPrim default_prim = DefaultPrim::Alone;
  std::string default_prim_node;  // DefaultPrim::Node only
  bool witness = false;           // a <splitbrain> checker is configured
  // With a gate, a start (or a wakeup) stays in WAIT (Transient) without taking a role until
  // Wakeup opens it: the driver's checkers must first report (the "pre" checkers of reference
  // 3.2.10, e.g. the interface checker). Without, the machine decides at once (tests, sim).
  bool gated = false;
  // The module replicates directories (<rfs>): the role changes include Replicate steps, and a
  // secondary that loses its replication link resynchronises.
  bool replicated = false;
  // The injected randomness for new generation ids (required).
  std::function<uint64_t()> random;
};

// What one heartbeat carries (DESIGN 5.1) as far as decisions are concerned.
struct MirrorHeartbeat {
  std::string node;
  ModuleState state;
  DataGeneration generation;  // includes the role epoch
  bool handover = false;      // the sender released the primary role to its peer (swap)
  std::optional<std::string> resources_digest;
};

struct AddVip {};
struct RemoveVip {};
struct PersistGeneration {
  DataGeneration record;
};
struct SendHeartbeatNow {};
struct AskWitness {};
struct StartResync {
  uint64_t id = 0;   // echoed by resyncDone, so a stale report is ignored
  bool full = true;  // false: related histories (the replication layer may copy changes only)
  // Both nodes wrote without the other (split brain): this node's changes are kept aside
  // before they are overwritten (DESIGN 5.6).
  bool split_brain = false;
};
// Replicated directories (<rfs>) only: the driver puts this node's replication in place for the
// role (Primary: the interception mounted before the application starts; Off: no replication
// process left, so the directories are plain again) and answers replicationReady(id, ...). The
// machine waits for it like for a script. The secondary's replication is StartResync.
enum class ReplicationRole { Primary, Off };
struct Replicate {
  ReplicationRole role = ReplicationRole::Off;
  uint64_t id = 0;
};
using MirrorAction =
    std::variant<RunScript, SetState, LogLine, AddVip, RemoveVip, PersistGeneration,
                 SendHeartbeatNow, AskWitness, StartResync, KillScript, OperationDone, Replicate>;
std::string describeAction(const MirrorAction& a);

class MirrorMachine {
 public:
  // `persisted`: the record the node saved last (a default record on first configuration).
  MirrorMachine(MirrorConfig config, DataGeneration persisted);

  Status check(MirrorCommand c) const;
  Result<std::vector<MirrorAction>> command(MirrorCommand c);
  std::vector<MirrorAction> heartbeatReceived(const MirrorHeartbeat& hb);
  // No heartbeat on any network for `timeout` (or since the start).
  std::vector<MirrorAction> heartbeatsLost();
  std::vector<MirrorAction> scriptFinished(const ScriptOutcome& outcome);
  std::vector<MirrorAction> witnessResult(bool reachable);
  std::vector<MirrorAction> resyncDone(uint64_t id, bool success);
  // The replication link (or process) failed. On the primary (reference 2.2: locktimeout,
  // sendtimeout): PRIM -> ALONE, a new generation either way. On a secondary of a module that
  // replicates: it is outdated and resynchronises. Applied once the machine is idle.
  std::vector<MirrorAction> replicationLost();
  // On the primary: its replication layer finished the secondary's resync (the other half of
  // the secondary's resyncDone). From now on the secondary may take over.
  std::vector<MirrorAction> peerResynced();
  // The driver finished (or failed) the Replicate step `id`. A failure to put the primary's
  // replication in place stops the module, like a failing start script.
  std::vector<MirrorAction> replicationReady(uint64_t id, bool ok, const std::string& detail);

  // `usersetting.failover` changed (halo failover on|off): applies to the next peer loss.
  void setFailover(bool on) { config_.failover = on; }
  // The runtime restarted while the module ran: resume from the persisted state. A stable role
  // (PRIM, ALONE, SECOND Ready) is kept and re-checked against the peer's heartbeats; anything
  // in between is stopped (force) and started again.
  std::vector<MirrorAction> recover(ModuleState persisted);

  MirrorHeartbeat heartbeat() const;
  ModuleState state() const { return state_; }
  const DataGeneration& generation() const { return record_; }
  bool peerAlive() const { return peer_alive_; }
  const std::optional<MirrorHeartbeat>& peer() const { return peer_; }
  bool busy() const { return running_.has_value() || replicating_.has_value() || !queue_.empty(); }
  bool isPrimary() const;
  // WAIT because a failover rule asked for it (its implicit wakeup applies).
  bool heldByRule() const { return wait_reason_ == WaitReason::Blocked; }
  const std::optional<RunScript>& runningScript() const { return running_; }

 private:
  using Step = std::variant<RunScript, SetState, LogLine, AddVip, RemoveVip, PersistGeneration,
                            SendHeartbeatNow, AskWitness, StartResync, Replicate>;
  enum class WaitReason { None, NotUptodate, Witness, FailoverOff, Blocked };

  void enqueueScript(std::string name, std::vector<std::string> args, ScriptKind kind);
  // Stops the running script groups not in `keep` (a mask of groups).
  void enqueueStopGroups(MainState from, MainState to, const std::string& action, bool graceful,
                         unsigned keep);
  void enqueueStartGroups(MainState from, MainState to, const std::string& action);
  void enqueueRoleScripts(MainState from, MainState to, const std::string& action);
  void enqueueStart(const std::string& action);
  void enqueueStop(const std::string& action, bool graceful);
  void enqueueBecomePrimary(MainState to, const std::string& action);
  void enqueueToWait(WaitReason why, const std::string& action);
  void enqueueBecomeSecond(const std::string& action);
  void enqueuePrimarySwitch(MainState to, const std::string& action);  // PRIM <-> ALONE
  void enqueueResync();
  void enqueueSwap(const std::string& action);
  void persist();
  void enqueueReplicate(ReplicationRole role);
  void log(Severity s, std::string m) { queue_.push_back(LogLine{s, std::move(m)}); }
  // Whether the local node should be the primary when both nodes want a role.
  bool winsRank(const MirrorHeartbeat& peer) const;
  bool peerIsPrimary() const;
  void evaluate();
  void peerGone(bool by_timeout);
  void applyReplicationLost();
  void applyResyncDone(uint64_t id, bool success);
  std::vector<MirrorAction> advance();

  MirrorConfig config_;
  DataGeneration record_;
  ModuleState state_;
  std::optional<MirrorHeartbeat> peer_;
  bool peer_alive_ = false;
  bool peer_lost_ = false;  // heartbeatsLost since the last heartbeat
  std::deque<Step> queue_;
  std::optional<RunScript> running_;
  std::optional<Replicate> replicating_;  // the Replicate step the driver is performing
  uint64_t replicate_id_ = 0;
  bool forced_prim_ = false;
  bool forced_second_ = false;
  bool handover_ = false;
  bool witness_pending_ = false;
  bool replication_lost_ = false;                            // replicationLost() not applied yet
  std::optional<std::pair<uint64_t, bool>> pending_resync_;  // resyncDone() while busy
  bool in_operation_ = false;
  bool split_logged_ = false;
  bool swap_done_ = false;  // defaultprim swap done for this primary period
  bool gate_open_ = false;  // config_.gated only: the driver let the start decide
  WaitReason wait_reason_ = WaitReason::None;
  uint64_t resync_id_ = 0;
  bool started_clean_ = true;
  bool had_role_ = false;
  bool peer_in_sync_ =
      false;  // as primary: the secondary holds our generation      // this run became primary or
              // an up-to-date secondary  // the record's clean_stop when the current start began
  unsigned app_groups_ = 0;  // script groups whose start script was called and not stopped
};

}  // namespace halo::core
