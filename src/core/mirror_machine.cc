#include "core/mirror_machine.h"

#include <algorithm>
#include <utility>

namespace halo::core {

using mirror_internal::primaryState;

namespace {

enum Group : unsigned { kPrimG = 1, kSecondG = 2, kSecG = 4, kBothG = 8 };

unsigned groupsOf(MainState s) {
  switch (s) {
    case MainState::Prim:
      return kPrimG | kBothG;
    case MainState::Alone:
      return kPrimG | kSecG | kBothG;
    case MainState::Second:
      return kSecondG | kSecG | kBothG;
    default:
      return 0;
  }
}

const char* groupSuffix(unsigned g) {
  switch (g) {
    case kPrimG:
      return "prim";
    case kSecondG:
      return "second";
    case kSecG:
      return "sec";
    default:
      return "both";
  }
}

}  // namespace

const char* mirrorCommandName(MirrorCommand c) {
  switch (c) {
    case MirrorCommand::Start:
      return "start";
    case MirrorCommand::Stop:
      return "stop";
    case MirrorCommand::Restart:
      return "restart";
    case MirrorCommand::Stopstart:
      return "stopstart";
    case MirrorCommand::Forcestop:
      return "forcestop";
    case MirrorCommand::Swap:
      return "swap";
    case MirrorCommand::Prim:
      return "prim";
    case MirrorCommand::Second:
      return "second";
    case MirrorCommand::Primforce:
      return "primforce";
    case MirrorCommand::Wait:
      return "wait";
    case MirrorCommand::Wakeup:
      return "wakeup";
  }
  return "start";
}

std::string describeAction(const MirrorAction& a) {
  if (auto* r = std::get_if<RunScript>(&a)) {
    std::string s = "script " + r->name;
    for (const auto& x : r->args) {
      s += " " + x;
    }
    return s;
  }
  if (auto* s = std::get_if<SetState>(&a)) {
    return "state " + s->state.describe();
  }
  if (auto* l = std::get_if<LogLine>(&a)) {
    return "log " + l->message;
  }
  if (std::holds_alternative<AddVip>(a)) {
    return "add vip";
  }
  if (std::holds_alternative<RemoveVip>(a)) {
    return "remove vip";
  }
  if (auto* p = std::get_if<PersistGeneration>(&a)) {
    return "persist gen=" + std::to_string(p->record.current) +
           " parent=" + std::to_string(p->record.parent) +
           (p->record.uptodate ? " uptodate" : " notuptodate") +
           " epoch=" + std::to_string(p->record.role_epoch);
  }
  if (std::holds_alternative<SendHeartbeatNow>(a)) {
    return "send heartbeat";
  }
  if (std::holds_alternative<AskWitness>(a)) {
    return "ask witness";
  }
  if (auto* r = std::get_if<StartResync>(&a)) {
    return "start resync " + std::to_string(r->id) + (r->full ? " full" : " changes") +
           (r->split_brain ? " split brain" : "");
  }
  if (auto* r = std::get_if<Replicate>(&a)) {
    return std::string("replicate ") + (r->role == ReplicationRole::Primary ? "primary" : "off");
  }
  if (auto* d = std::get_if<OperationDone>(&a)) {
    return d->stopped ? "done (stopped)" : "done";
  }
  return "?";
}

MirrorMachine::MirrorMachine(MirrorConfig config, DataGeneration persisted)
    : config_(std::move(config)), record_(persisted) {}

bool MirrorMachine::isPrimary() const { return primaryState(state_.main); }

bool MirrorMachine::peerIsPrimary() const {
  return peer_alive_ && peer_ && primaryState(peer_->state.main) && !peer_->handover;
}

MirrorHeartbeat MirrorMachine::heartbeat() const {
  MirrorHeartbeat hb;
  hb.node = config_.local_node;
  hb.state = state_;
  hb.generation = record_;
  hb.handover = handover_;
  return hb;
}

void MirrorMachine::enqueueScript(std::string name, std::vector<std::string> args,
                                  ScriptKind kind) {
  queue_.push_back(RunScript{std::move(name), std::move(args), kind});
}

void MirrorMachine::persist() { queue_.push_back(PersistGeneration{record_}); }

void MirrorMachine::enqueueReplicate(ReplicationRole role) {
  if (config_.replicated) {
    queue_.push_back(Replicate{role, 0});
  }
}

void MirrorMachine::enqueueStopGroups(MainState from, MainState to, const std::string& action,
                                      bool graceful, unsigned keep) {
  const unsigned leaving = app_groups_ & ~keep;
  const std::string cur = mainStateName(from);
  const std::string nxt = mainStateName(to);
  for (unsigned g : {kPrimG, kSecondG, kSecG, kBothG}) {
    if ((leaving & g) == 0) {
      continue;
    }
    const std::string name = std::string("stop_") + groupSuffix(g);
    if (graceful) {
      enqueueScript(name, {cur, nxt, action}, ScriptKind::StopGraceful);
    }
    enqueueScript(name, {"force", cur, nxt, action}, ScriptKind::StopForce);
    if (g == kPrimG) {
      queue_.push_back(RemoveVip{});
    }
  }
  app_groups_ &= ~leaving;
}

void MirrorMachine::enqueueStartGroups(MainState from, MainState to, const std::string& action) {
  const unsigned entering = groupsOf(to) & ~app_groups_;
  const std::string cur = mainStateName(from);
  const std::string nxt = mainStateName(to);
  for (unsigned g : {kBothG, kSecG, kSecondG, kPrimG}) {
    if ((entering & g) == 0) {
      continue;
    }
    if (g == kPrimG) {
      queue_.push_back(AddVip{});
    }
    enqueueScript(std::string("start_") + groupSuffix(g), {cur, nxt, action}, ScriptKind::Start);
  }
  app_groups_ |= entering;
}

void MirrorMachine::enqueueStart(const std::string& action) {
  started_clean_ = record_.clean_stop;
  had_role_ = false;
  peer_lost_ = false;  // the driver measures the heartbeat timeout again from the start
  wait_reason_ = WaitReason::None;
  split_logged_ = false;
  gate_open_ = false;
  queue_.push_back(SetState{{MainState::Wait, Readiness::Transient}});
  enqueueScript("transition", {"STOP", "WAIT", action}, ScriptKind::Notify);
  enqueueScript("prestart", {"STOP", "WAIT", action}, ScriptKind::Start);
  record_.clean_stop = false;
  persist();
  queue_.push_back(SendHeartbeatNow{});
}

void MirrorMachine::enqueueStop(const std::string& action, bool graceful) {
  const MainState from = state_.main;
  queue_.push_back(SetState{{from, Readiness::Transient}});
  enqueueStopGroups(from, MainState::Stop, action, graceful, 0);
  enqueueReplicate(ReplicationRole::Off);
  enqueueScript("transition", {mainStateName(from), "STOP", action}, ScriptKind::Notify);
  enqueueScript("poststop", {mainStateName(from), "STOP", action}, ScriptKind::Notify);
  const bool peer_second_ready =
      peer_alive_ && peer_ && peer_->state == ModuleState{MainState::Second, Readiness::Ready} &&
      compareGenerations(record_, peer_->generation) == GenerationOrder::Same;
  if (primaryState(from) && (peer_second_ready || peer_in_sync_) && config_.failover) {
    record_.uptodate = false;  // the secondary takes over and writes from now on
  }
  if (from == MainState::Second) {
    record_.uptodate = false;  // the primary (if any is left) keeps writing without us
  }
  record_.last_primary = primaryState(from);
  // A run that never took a role does not make an unclean (crashed) record clean.
  record_.clean_stop = started_clean_ || had_role_;
  persist();
  queue_.push_back(SetState{{MainState::Stop, Readiness::NotReady}});
  queue_.push_back(SendHeartbeatNow{});
  forced_prim_ = false;
  forced_second_ = false;
  handover_ = false;
  witness_pending_ = false;
  wait_reason_ = WaitReason::None;
}

// The scripts of a role change, in the reference's order: stop what `to` does not run,
// transition, start what it runs; then Ready, announced at once.
void MirrorMachine::enqueueRoleScripts(MainState from, MainState to, const std::string& action) {
  enqueueStopGroups(from, to, action, true, groupsOf(to));
  if (primaryState(to) && !primaryState(from)) {
    // The directories are intercepted before any application script of the primary runs.
    enqueueReplicate(ReplicationRole::Primary);
  }
  enqueueScript("transition", {mainStateName(from), mainStateName(to), action}, ScriptKind::Notify);
  enqueueStartGroups(from, to, action);
  queue_.push_back(SetState{{to, Readiness::Ready}});
  queue_.push_back(SendHeartbeatNow{});
}

void MirrorMachine::enqueueBecomePrimary(MainState to, const std::string& action) {
  const MainState from = state_.main;
  const uint64_t seen = peer_ ? peer_->generation.role_epoch : 0;
  record_.role_epoch = std::max(record_.role_epoch, seen) + 1;
  if (to == MainState::Alone) {
    record_ = enterAlone(record_, config_.random());
  }
  record_.uptodate = true;
  record_.last_primary = true;
  had_role_ = true;
  persist();
  forced_prim_ = false;
  forced_second_ = false;
  handover_ = false;
  swap_done_ = false;
  wait_reason_ = WaitReason::None;
  queue_.push_back(SetState{{to, Readiness::Transient}});
  queue_.push_back(SendHeartbeatNow{});
  enqueueRoleScripts(from, to, action);
}

void MirrorMachine::enqueuePrimarySwitch(MainState to, const std::string& action) {
  const MainState from = state_.main;
  if (to == MainState::Alone) {
    record_ = enterAlone(record_, config_.random());
  } else {
    record_.alone = false;  // the secondary holds this generation too
  }
  persist();
  queue_.push_back(SetState{{to, Readiness::Transient}});
  enqueueRoleScripts(from, to, action);
}

void MirrorMachine::enqueueToWait(WaitReason why, const std::string& action) {
  const MainState from = state_.main;
  wait_reason_ = why;
  if (from != MainState::Wait) {
    queue_.push_back(SetState{{from, Readiness::Transient}});
    enqueueStopGroups(from, MainState::Wait, action, true, 0);
    enqueueReplicate(ReplicationRole::Off);
    enqueueScript("transition", {mainStateName(from), "WAIT", action}, ScriptKind::Notify);
  }
  if (primaryState(from)) {
    record_.last_primary = true;
  }
  if (why == WaitReason::Witness || why == WaitReason::FailoverOff) {
    // The peer may take over (or already has): this node no longer knows it is up to date.
    record_.uptodate = false;
  }
  persist();
  handover_ = false;
  queue_.push_back(SetState{{MainState::Wait, Readiness::NotReady}});
  queue_.push_back(SendHeartbeatNow{});
}

void MirrorMachine::enqueueResync() {
  // Changes only unless this node never held the module's data: the replication layer compares
  // the nodes' sync points and change logs exactly (an interrupted reintegration included) and
  // falls back to comparing every file when they do not match. Generations cannot tell it: a
  // primary draws a new one at every loss of its secondary, so after two losses the
  // secondary's generation is no longer the primary's parent although nothing else happened.
  const GenerationOrder order =
      peer_ ? compareGenerations(record_, peer_->generation) : GenerationOrder::Unrelated;
  const bool changes_only = record_.current != 0;
  record_.uptodate = false;
  record_.resync_interrupted = true;
  record_.alone = false;
  record_.last_primary = false;
  persist();
  queue_.push_back(StartResync{++resync_id_, !changes_only, order == GenerationOrder::SplitBrain});
}

void MirrorMachine::enqueueBecomeSecond(const std::string& action) {
  const MainState from = state_.main;
  forced_second_ = false;
  forced_prim_ = false;
  wait_reason_ = WaitReason::None;
  queue_.push_back(SetState{{MainState::Second, Readiness::Transient}});
  enqueueScript("transition", {mainStateName(from), "SECOND", action}, ScriptKind::Notify);
  enqueueResync();
  queue_.push_back(SendHeartbeatNow{});
}

Status MirrorMachine::check(MirrorCommand c) const {
  const std::string now = state_.describe();
  const bool stopped = state_.main == MainState::Stop;
  if (busy() && c != MirrorCommand::Forcestop) {
    return failedPrecondition("the module is busy (" + now +
                              "); wait for it to finish, or abort it with halo forcestop");
  }
  switch (c) {
    case MirrorCommand::Start:
    case MirrorCommand::Second:
    case MirrorCommand::Prim:
    case MirrorCommand::Primforce:
      if (!stopped) {
        return failedPrecondition("the module is already started (" + now +
                                  "); run halo stop first");
      }
      if (c == MirrorCommand::Prim && record_.resync_interrupted) {
        return failedPrecondition(
            "Data may be inconsistent for replicated directories (stopped during "
            "reintegration); if you are sure this server has valid data, run halo primforce");
      }
      if ((c == MirrorCommand::Prim || c == MirrorCommand::Primforce) && peerIsPrimary()) {
        return failedPrecondition("the peer " + config_.peer_node + " is " +
                                  peer_->state.describe() + "; run halo second or halo start");
      }
      return okStatus();
    case MirrorCommand::Stop:
    case MirrorCommand::Stopstart:
      if (stopped) {
        return failedPrecondition("the module is not started (" + now + ")");
      }
      return okStatus();
    case MirrorCommand::Forcestop:
      if (stopped && !busy()) {
        return failedPrecondition("the module is not started (" + now + ")");
      }
      return okStatus();
    case MirrorCommand::Restart:
      if (state_.readiness != Readiness::Ready ||
          (!isPrimary() && state_.main != MainState::Second)) {
        return failedPrecondition("restart needs PRIM, ALONE or SECOND (Ready); it is " + now);
      }
      return okStatus();
    case MirrorCommand::Wait:
      if (stopped || (state_.main == MainState::Wait && wait_reason_ == WaitReason::Blocked)) {
        return failedPrecondition("wait does not apply to a module that is " + now);
      }
      return okStatus();
    case MirrorCommand::Wakeup:
      if (state_.main != MainState::Wait ||
          !(wait_reason_ == WaitReason::Blocked ||
            (state_.readiness == Readiness::Transient && config_.gated && !gate_open_))) {
        return failedPrecondition("wakeup needs a module held in WAIT by a rule; it is " + now);
      }
      return okStatus();
    case MirrorCommand::Swap:
      if (state_ != ModuleState{MainState::Prim, Readiness::Ready} || !peer_alive_ || !peer_ ||
          peer_->state != ModuleState{MainState::Second, Readiness::Ready}) {
        return failedPrecondition(
            "swap needs this node PRIM (Ready) and its peer SECOND (Ready); it is " + now +
            "; run halo swap on the primary");
      }
      return okStatus();
  }
  return invalidArgument("unknown command");
}

Result<std::vector<MirrorAction>> MirrorMachine::command(MirrorCommand c) {
  HALO_RETURN_IF_ERROR(check(c));
  std::vector<MirrorAction> out;
  if (c != MirrorCommand::Wait && c != MirrorCommand::Wakeup) {
    // Rules' actions are logged by the driver, which knows the rule's name.
    out.push_back(LogLine{Severity::User,
                          std::string("Action ") + mirrorCommandName(c) + " called by operator"});
  }
  switch (c) {
    case MirrorCommand::Start:
      enqueueStart("start");
      break;
    case MirrorCommand::Prim:
    case MirrorCommand::Primforce:
      forced_prim_ = true;
      record_.uptodate = true;
      if (c == MirrorCommand::Primforce) {
        record_.resync_interrupted = false;
      }
      enqueueStart("start");
      break;
    case MirrorCommand::Second:
      forced_second_ = true;
      record_.uptodate = false;  // its data will be replaced from the primary
      enqueueStart("start");
      break;
    case MirrorCommand::Stop:
      enqueueStop("stop", true);
      break;
    case MirrorCommand::Stopstart:
      enqueueStop("stopstart", true);
      enqueueStart("stopstart");
      break;
    case MirrorCommand::Forcestop:
      if (running_) {
        out.push_back(KillScript{});
        out.push_back(
            LogLine{Severity::Error, "Script " + running_->name + " killed by forcestop"});
        running_.reset();
      }
      queue_.clear();
      replicating_.reset();  // its late answer is ignored; the stop's own Off follows it
      app_groups_ |= groupsOf(state_.main);
      enqueueStop("stop", false);
      break;
    case MirrorCommand::Restart: {
      const MainState s = state_.main;
      queue_.push_back(SetState{{s, Readiness::Transient}});
      enqueueStopGroups(s, s, "restart", true, 0);
      enqueueStartGroups(s, s, "restart");
      queue_.push_back(SetState{{s, Readiness::Ready}});
      queue_.push_back(SendHeartbeatNow{});
      break;
    }
    case MirrorCommand::Swap:
      enqueueSwap("swap");
      break;
    case MirrorCommand::Wait:
      enqueueToWait(WaitReason::Blocked, "stopwait");
      break;
    case MirrorCommand::Wakeup:
      gate_open_ = true;
      if (wait_reason_ == WaitReason::Blocked) {
        wait_reason_ = WaitReason::None;
        queue_.push_back(SetState{{MainState::Wait, Readiness::Transient}});
        queue_.push_back(SendHeartbeatNow{});
      }
      break;
  }
  in_operation_ = true;
  auto more = advance();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

void MirrorMachine::enqueueSwap(const std::string& action) {
  log(Severity::User, "Begin of Swap");
  handover_ = true;
  swap_done_ = true;
  record_.last_primary = false;
  persist();
  queue_.push_back(SetState{{MainState::Prim, Readiness::Transient}});
  enqueueStopGroups(MainState::Prim, MainState::Second, action, true, 0);
  enqueueReplicate(ReplicationRole::Off);
  enqueueScript("transition", {"PRIM", "SECOND", action}, ScriptKind::Notify);
  queue_.push_back(SetState{{MainState::Second, Readiness::Transient}});
  queue_.push_back(SendHeartbeatNow{});
}

std::vector<MirrorAction> MirrorMachine::recover(ModuleState persisted) {
  std::vector<MirrorAction> out;
  const MainState m = persisted.main;
  const bool role = m == MainState::Prim || m == MainState::Alone || m == MainState::Second;
  out.push_back(
      LogLine{Severity::Info, "Resuming after a runtime restart in " + persisted.describe()});
  if (m == MainState::Stop) {
    return out;
  }
  state_ = persisted;
  app_groups_ = groupsOf(m);
  started_clean_ = record_.clean_stop;
  gate_open_ = true;
  if (role && persisted.readiness == Readiness::Ready) {
    had_role_ = true;
    queue_.push_back(SendHeartbeatNow{});
  } else if (m == MainState::Wait) {
    queue_.push_back(SetState{{MainState::Wait, Readiness::Transient}});
    queue_.push_back(SendHeartbeatNow{});
  } else {
    // Interrupted between two states: what runs is unknown, so stop all of it and start over.
    enqueueStop("stop", false);
    enqueueStart("start");
    in_operation_ = true;
  }
  auto more = advance();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::vector<MirrorAction> MirrorMachine::heartbeatReceived(const MirrorHeartbeat& hb) {
  std::vector<MirrorAction> out;
  if (hb.node != config_.peer_node) {
    out.push_back(LogLine{Severity::Error, "Heartbeat from unknown node " + hb.node + " ignored"});
    return out;
  }
  if (!peer_alive_ && peer_lost_) {
    out.push_back(LogLine{Severity::Info, "Heartbeats back from " + hb.node + ": remote state " +
                                              hb.state.describe()});
  }
  peer_ = hb;
  peer_alive_ = true;
  peer_lost_ = false;
  witness_pending_ = false;  // the peer is back: no need for the witness's answer
  auto more = advance();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::vector<MirrorAction> MirrorMachine::heartbeatsLost() {
  std::vector<MirrorAction> out;
  if (peer_lost_) {
    return out;
  }
  peer_in_sync_ = false;
  if (peer_alive_) {
    out.push_back(LogLine{Severity::Info, "Resource heartbeat.* set to down by heart"});
    out.push_back(LogLine{Severity::Info, "Remote state UNKNOWN Unknown"});
  }
  peer_alive_ = false;
  peer_lost_ = true;
  auto more = advance();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::vector<MirrorAction> MirrorMachine::witnessResult(bool reachable) {
  std::vector<MirrorAction> out;
  if (!witness_pending_) {
    return out;
  }
  witness_pending_ = false;
  if (peer_alive_ || busy()) {
    return advance();
  }
  if (reachable) {
    log(Severity::Info, "Resource splitbrain.uptodate set to up by splitbrain");
    if (state_.main == MainState::Second) {
      log(Severity::User, "Action alone called by heart: no heartbeat");
      enqueueBecomePrimary(MainState::Alone, "start");
    } else if (state_.main == MainState::Prim) {
      enqueuePrimarySwitch(MainState::Alone, "start");
    }
  } else {
    log(Severity::User, "Action wait from failover rule splitbrain_failure");
    enqueueToWait(WaitReason::Witness, "stopwait");
  }
  return advance();
}

std::vector<MirrorAction> MirrorMachine::resyncDone(uint64_t id, bool success) {
  if (id == resync_id_ && busy()) {
    // A script is running: applied by evaluate() once the machine is idle.
    pending_resync_ = std::make_pair(id, success);
    return {};
  }
  applyResyncDone(id, success);
  return advance();
}

void MirrorMachine::applyResyncDone(uint64_t id, bool success) {
  if (id != resync_id_ || state_ != ModuleState{MainState::Second, Readiness::Transient} ||
      handover_ || !peer_) {
    return;
  }
  if (!success) {
    log(Severity::Error, "Reintegration failed: retrying");
    enqueueResync();
    return;
  }
  record_.current = peer_->generation.current;
  record_.parent = peer_->generation.parent;
  record_.role_epoch = std::max(record_.role_epoch, peer_->generation.role_epoch);
  record_.uptodate = true;
  record_.resync_interrupted = false;
  record_.alone = false;
  had_role_ = true;
  persist();
  log(Severity::Info, "Reintegration ended (synchronize)");
  enqueueStartGroups(MainState::Second, MainState::Second, "start");
  queue_.push_back(SetState{{MainState::Second, Readiness::Ready}});
  queue_.push_back(SendHeartbeatNow{});
}

std::vector<MirrorAction> MirrorMachine::peerResynced() {
  if (isPrimary()) {
    peer_in_sync_ = true;
    if (record_.alone) {
      record_.alone = false;
      persist();
    }
  }
  return advance();
}

std::vector<MirrorAction> MirrorMachine::replicationLost() {
  replication_lost_ = true;  // applied by evaluate() as soon as the machine is idle
  return advance();
}

void MirrorMachine::applyReplicationLost() {
  replication_lost_ = false;
  if (isPrimary()) {
    log(Severity::Error, "Replication to the secondary failed: continuing alone");
    peer_in_sync_ = false;
    record_.alone = false;  // the secondary may hold the current generation
    if (state_.main == MainState::Prim) {
      enqueuePrimarySwitch(MainState::Alone, "start");
    } else {
      record_ = enterAlone(record_, config_.random());
      persist();
    }
  } else if (state_.main == MainState::Second && config_.replicated && !handover_) {
    // This node no longer receives what the primary writes: it is outdated from now on.
    if (state_.readiness == Readiness::Ready) {
      log(Severity::Error, "Replication link lost: resynchronizing");
      queue_.push_back(SetState{{MainState::Second, Readiness::Transient}});
    } else {
      log(Severity::Error, "Reintegration interrupted: retrying");
    }
    enqueueResync();
    queue_.push_back(SendHeartbeatNow{});
  }
}

std::vector<MirrorAction> MirrorMachine::replicationReady(uint64_t id, bool ok,
                                                          const std::string& detail) {
  std::vector<MirrorAction> out;
  if (!replicating_ || replicating_->id != id) {
    return out;
  }
  const Replicate done = *replicating_;
  replicating_.reset();
  if (!ok && done.role == ReplicationRole::Primary) {
    out.push_back(
        LogLine{Severity::Error, "Replication cannot start: " + detail + ": stopping the module"});
    queue_.clear();
    enqueueStop("stop", true);
    in_operation_ = true;
  } else if (!ok) {
    out.push_back(LogLine{Severity::Error, "Replication did not stop cleanly: " + detail});
  }
  auto more = advance();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::vector<MirrorAction> MirrorMachine::scriptFinished(const ScriptOutcome& outcome) {
  std::vector<MirrorAction> out;
  if (!running_) {
    return out;
  }
  const RunScript done = *running_;
  running_.reset();
  if (outcome.present && !outcome.success) {
    if (done.kind == ScriptKind::Start) {
      out.push_back(LogLine{Severity::Error, "Script " + done.name + " failed (" + outcome.detail +
                                                 "): stopping the module"});
      queue_.clear();
      // A failed prestart may still be in STOP's successor WAIT: stop from where we are.
      enqueueStop("stop", true);
      in_operation_ = true;
    } else {
      out.push_back(
          LogLine{Severity::Error, "Script " + done.name + " failed (" + outcome.detail + ")"});
    }
  }
  auto more = advance();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::vector<MirrorAction> MirrorMachine::advance() {
  std::vector<MirrorAction> out;
  for (int guard = 0; guard < 16; ++guard) {
    if (running_ || replicating_) {
      return out;
    }
    while (!queue_.empty()) {
      Step step = std::move(queue_.front());
      queue_.pop_front();
      if (auto* r = std::get_if<RunScript>(&step)) {
        running_ = *r;
        out.push_back(*r);
        return out;
      }
      if (auto* r = std::get_if<Replicate>(&step)) {
        r->id = ++replicate_id_;
        replicating_ = *r;
        out.push_back(*r);
        return out;
      }
      if (auto* s = std::get_if<SetState>(&step)) {
        state_ = s->state;
      }
      std::visit([&](auto& v) { out.push_back(v); }, step);
    }
    if (in_operation_) {
      in_operation_ = false;
      out.push_back(OperationDone{state_.main == MainState::Stop});
    }
    evaluate();
    if (queue_.empty()) {
      return out;
    }
  }
  return out;
}

}  // namespace halo::core
