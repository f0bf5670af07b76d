// The decisions of a mirror node once its commands' steps are done: who becomes primary, when the
// peer is gone, and split-brain recovery (MirrorMachine::evaluate, peerGone, winsRank). The
// commands and the step queue are in mirror_machine.cc.

#include <algorithm>
#include <tuple>

#include "core/mirror_machine.h"

namespace halo::core {

using mirror_internal::primaryState;

namespace {

// Whether node `a` should take the primary role rather than node `b` when both want a role.
// Symmetric: rank(a, b) and rank(b, a) are never both true.
bool rank(const DataGeneration& a, const std::string& a_name, const DataGeneration& b,
          const std::string& b_name, const MirrorConfig& c) {
  const bool a_ok = a.uptodate && !a.resync_interrupted;
  const bool b_ok = b.uptodate && !b.resync_interrupted;
  if (!a_ok) {
    return false;
  }
  switch (compareGenerations(a, b)) {
    case GenerationOrder::LocalNewer:
      return true;
    case GenerationOrder::RemoteNewer:
      return false;  // never over newer data, even data its holder doubts
    case GenerationOrder::Unrelated:
      return !b_ok && b.current == 0;
    case GenerationOrder::SplitBrain:
      // Both wrote without the other and neither is running: nothing is discarded silently,
      // the operator chooses (halo prim). A live split brain is resolved by role epoch.
      return !b_ok;
    case GenerationOrder::Same:
      if (!b_ok) {
        return true;
      }
      if (a.alone != b.alone) {
        return a.alone;  // the writer of this generation may have continued after the copy
      }
      if (c.default_prim == DefaultPrim::LastPrim && a.last_primary != b.last_primary) {
        return a.last_primary;
      }
      if (c.default_prim == DefaultPrim::Node) {
        if (c.default_prim_node == a_name) {
          return true;
        }
        if (c.default_prim_node == b_name) {
          return false;
        }
      }
      return a_name < b_name;
  }
  return false;
}

}  // namespace

bool MirrorMachine::winsRank(const MirrorHeartbeat& peer) const {
  return rank(record_, config_.local_node, peer.generation, peer.node, config_);
}

void MirrorMachine::peerGone(bool by_timeout) {
  const char* why = by_timeout ? "no heartbeat" : "remote stop";
  if (state_.main == MainState::Second) {
    if (!record_.uptodate) {
      log(Severity::Error, "Reintegration interrupted: the primary is gone");
      enqueueToWait(WaitReason::NotUptodate, "stopwait");
    } else if (!config_.failover) {
      log(Severity::User, "Failover-off configured");
      log(Severity::User, "Action stopstart called by failover-off");
      log(Severity::User, "Transition STOPSTART from failover-off");
      enqueueToWait(WaitReason::FailoverOff, "stopstart");
    } else if (by_timeout && config_.witness) {
      witness_pending_ = true;
      queue_.push_back(AskWitness{});
    } else if (peer_ && compareGenerations(record_, peer_->generation) != GenerationOrder::Same &&
               compareGenerations(record_, peer_->generation) != GenerationOrder::LocalNewer) {
      log(Severity::Error, "The primary wrote without this secondary: waiting");
      record_.uptodate = false;
      enqueueToWait(WaitReason::NotUptodate, "stopwait");
    } else if (!by_timeout && peer_->state.main == MainState::Stop && peer_->generation.uptodate) {
      // The primary stopped without handing over: it did not see this secondary (one-way
      // isolation) and may have written without it.
      log(Severity::Error, "The primary stopped without handing over: waiting");
      record_.uptodate = false;
      enqueueToWait(WaitReason::NotUptodate, "stopwait");
    } else {
      log(Severity::User, std::string("Action alone called by heart: ") + why);
      enqueueBecomePrimary(MainState::Alone, "start");
    }
  } else if (state_.main == MainState::Prim) {
    if (by_timeout && config_.witness) {
      witness_pending_ = true;
      queue_.push_back(AskWitness{});
    } else {
      log(Severity::User, std::string("Action alone called by heart: ") + why);
      enqueuePrimarySwitch(MainState::Alone, "start");
    }
  }
}

void MirrorMachine::evaluate() {
  if (witness_pending_ || state_.main == MainState::Stop) {
    replication_lost_ = false;
    return;
  }
  if (replication_lost_) {
    applyReplicationLost();
    if (!queue_.empty()) {
      return;
    }
  }
  if (pending_resync_) {
    const auto [id, success] = *pending_resync_;
    pending_resync_.reset();
    applyResyncDone(id, success);
    if (!queue_.empty()) {
      return;
    }
  }
  const bool alive = peer_alive_ && peer_.has_value();
  const MainState pm = alive ? peer_->state.main : MainState::Stop;
  const bool peer_gone_clean = alive && (pm == MainState::Stop || pm == MainState::Wait);
  switch (state_.main) {
    case MainState::Stop:
    case MainState::Up:
      return;
    case MainState::Wait: {
      if (wait_reason_ == WaitReason::Blocked || (config_.gated && !gate_open_)) {
        return;  // a rule holds the module: no role until Wakeup
      }
      if (peerIsPrimary()) {
        enqueueBecomeSecond("start");
        return;
      }
      if (forced_prim_) {
        log(Severity::User, "Action prim: this server becomes primary without its peer");
        enqueueBecomePrimary(MainState::Alone, "start");
        return;
      }
      const bool deciding = state_.readiness == Readiness::Transient;
      if (alive && pm == MainState::Wait) {
        if (!forced_second_ && winsRank(*peer_)) {
          enqueueBecomePrimary(MainState::Alone, "start");
        } else if (!rank(peer_->generation, peer_->node, record_, config_.local_node, config_) &&
                   state_.readiness == Readiness::Transient) {
          log(Severity::User, "Action wait from failover rule rfs_notuptodate_server");
          log(Severity::Error,
              "Data may be not uptodate for replicated directories (neither server has data "
              "known to be up to date)");
          log(Severity::Error,
              "If you are sure that this server has valid data, run halo stop, "
              "then halo prim");
          enqueueToWait(WaitReason::NotUptodate, "start");
        }
        return;
      }
      if (deciding && ((!alive && peer_lost_) || (alive && pm == MainState::Stop))) {
        bool valid = record_.uptodate && started_clean_ && !record_.resync_interrupted;
        if (valid && peer_) {
          // The last record the peer sent (even a stopped peer's) may show newer data.
          const GenerationOrder o = compareGenerations(record_, peer_->generation);
          valid = o == GenerationOrder::LocalNewer ||
                  (o == GenerationOrder::Same && (record_.alone || !peer_->generation.alone)) ||
                  winsRank(*peer_);
        }
        if (valid && !forced_second_) {
          log(Severity::User, "Action alone called by heart: no remote server");
          enqueueBecomePrimary(MainState::Alone, "start");
        } else {
          log(Severity::User, "Action wait from failover rule rfs_notuptodate_server");
          log(Severity::Error,
              "Data may be not uptodate for replicated directories (wait for "
              "the start of the remote server)");
          log(Severity::Error,
              "If you are sure that this server has valid data, run halo stop, "
              "then halo prim");
          enqueueToWait(WaitReason::NotUptodate, "start");
        }
      }
      return;
    }
    case MainState::Second: {
      if (handover_) {
        if (peerIsPrimary()) {
          handover_ = false;
          enqueueResync();
          queue_.push_back(SendHeartbeatNow{});
        } else if ((!alive && peer_lost_) || peer_gone_clean ||
                   (alive && pm == MainState::Second && !peer_->generation.uptodate)) {
          handover_ = false;
          log(Severity::Error, "Swap aborted: the peer did not take the primary role");
          enqueueBecomePrimary(MainState::Alone, "start");
        }
        return;
      }
      if (peerIsPrimary()) {
        if (state_.readiness == Readiness::Ready &&
            compareGenerations(record_, peer_->generation) != GenerationOrder::Same) {
          // The primary wrote without us (it went ALONE while we did not notice): resync.
          log(Severity::Info, "The primary wrote without this secondary: resynchronizing");
          queue_.push_back(SetState{{MainState::Second, Readiness::Transient}});
          enqueueResync();
          queue_.push_back(SendHeartbeatNow{});
        }
        return;
      }
      if (alive && pm == MainState::Second && !record_.uptodate) {
        log(Severity::Error, "Reintegration impossible: the peer is not primary");
        enqueueToWait(WaitReason::NotUptodate, "stopwait");
        return;
      }
      if (alive && pm == MainState::Second) {
        if (peer_->handover && record_.uptodate) {
          log(Severity::User, "Transition SWAP from peer");
          enqueueBecomePrimary(MainState::Alone, "start");
        } else if (!peer_->handover && record_.uptodate && winsRank(*peer_)) {
          enqueueBecomePrimary(MainState::Alone, "start");
        }
        return;
      }
      if (peer_gone_clean) {
        peerGone(false);
      } else if (!alive && peer_lost_) {
        peerGone(true);
      }
      return;
    }
    case MainState::Prim:
    case MainState::Alone: {
      if (peerIsPrimary()) {
        const bool stay = std::tie(record_.role_epoch, config_.local_node) <
                          std::tie(peer_->generation.role_epoch, peer_->node);
        if (stay) {
          if (!split_logged_) {
            split_logged_ = true;
            log(Severity::Critical, "Split brain recovery: staying alone");
          }
          if (state_.main == MainState::Prim) {
            enqueuePrimarySwitch(MainState::Alone, "start");
          }
        } else {
          log(Severity::Critical, "Split brain recovery: exiting alone");
          enqueueStop("stopstart", true);
          record_.uptodate = false;
          persist();
          enqueueStart("stopstart");
        }
        return;
      }
      if (alive && pm == MainState::Second) {
        const bool synced = peer_->state.readiness == Readiness::Ready &&
                            compareGenerations(record_, peer_->generation) == GenerationOrder::Same;
        if (state_.main == MainState::Alone && synced) {
          enqueuePrimarySwitch(MainState::Prim, "start");
        } else if (state_.main == MainState::Prim && synced &&
                   config_.default_prim == DefaultPrim::Node &&
                   config_.default_prim_node == config_.peer_node && !swap_done_) {
          log(Severity::User, "Transition SWAP from defaultprim");
          enqueueSwap("swap");
        } else if (state_.main == MainState::Prim && !synced && !peer_->handover) {
          enqueuePrimarySwitch(MainState::Alone, "start");
        }
        return;
      }
      if (state_.main == MainState::Alone && !record_.alone &&
          ((!alive && peer_lost_) || peer_gone_clean)) {
        log(Severity::Info, "Secondary lost: writing a new data generation");
        peer_in_sync_ = false;
        record_ = enterAlone(record_, config_.random());
        persist();
        return;
      }
      if (peer_gone_clean) {
        peerGone(false);
      } else if (!alive && peer_lost_) {
        peerGone(true);
      }
      return;
    }
  }
}

}  // namespace halo::core
