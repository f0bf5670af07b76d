// MirrorIo's half for replicated directories (<rfs>): the machine's Replicate and StartResync
// become starts and stops of the replication process (RfsController), and what that process
// reports goes back to the machine: the secondary's reintegration done, a link lost, a process
// that died. Also the fence (DESIGN 6.2): after a synced link is lost, the primary's process
// holds acknowledgements until the peer's heartbeats show it knows it is outdated, or stop.

#include <unistd.h>

#include <algorithm>

#include "module/mirror_io.h"
#include "sys/files.h"

namespace halo::module {

namespace {

constexpr const char* kComponent = "rfs";
// A secondary whose reintegration failed tries again after this, doubling up to the maximum.
constexpr Millis kFirstRetry{500};
constexpr Millis kMaxRetry{10000};
// A secondary process found running by a restarted runtime, already synced.
constexpr uint64_t kAdopted = UINT64_MAX;
// Beyond the heartbeat timeout, before a secondary whose link ended counts itself outdated.
constexpr Millis kLinkLossMargin{300};
// Heartbeats younger than this, after a fence began, do not lift it (see rfsHeartbeat).
constexpr Millis kFenceSettle{500};

LogLevel levelOf(const std::string& l) {
  if (l == "C") {
    return LogLevel::Critical;
  }
  return l == "E" ? LogLevel::Error : LogLevel::Info;
}

}  // namespace

void MirrorIo::rfsCreate() {
  std::vector<std::string> dirs;
  for (const auto& r : config_.rfs->replicated) {
    dirs.push_back(r.dir);
  }
  RfsController::Hooks h;
  h.event = [this](const nlohmann::json& e) { rfsEvent(e); };
  h.status = [this](const nlohmann::json& s) { rfsStatus(s); };
  h.ended = [this](const std::string& role, const std::string& how) { rfsEnded(role, how); };
  rfs_ = std::make_unique<RfsController>(paths_, module_, std::move(dirs), loop_, std::move(h));
}

void MirrorIo::rfsBegin(bool recovering) {
  const auto now = loop_.time().systemTime();
  if (!recovering) {
    rfs_->cleanupLeftovers();
    (void)resources_.set("rfs.degraded", ResourceState::Down, kComponent, now);
    rfsUptodate();
    return;
  }
  const std::string role = rfs_->adopt();
  const core::MainState m = engine_.machine().state().main;
  const bool primary = m == core::MainState::Prim || m == core::MainState::Alone;
  if (role == "secondary") {
    resync_id_ = kAdopted;
    resync_synced_ = true;
  }
  if (primary && role != "primary") {
    // It died while no runtime watched: the same as dying now.
    loop_.post([this] { rfsEnded("primary", "ended while the module runtime was down"); });
  } else if (m == core::MainState::Second && role != "secondary") {
    loop_.post([this] { rfsSecondaryEnded("ended while the module runtime was down"); });
  }
  rfsUptodate();
}

std::optional<int64_t> MirrorIo::takeSecondforce() {
  const std::string marker = paths_.moduleVarDir(module_) + "/secondforce";
  auto text = sys::readFile(marker);
  if (!text.ok()) {
    return std::nullopt;
  }
  ::unlink(marker.c_str());
  const int64_t since = std::atoll(text->c_str());
  return since > 0 ? std::optional<int64_t>(since) : std::nullopt;
}

bool MirrorIo::takeFullsync() {
  const std::string marker = paths_.moduleVarDir(module_) + "/fullsync";
  return ::unlink(marker.c_str()) == 0;
}

void MirrorIo::rfsUptodate() {
  const auto& g = engine_.machine().generation();
  (void)resources_.set(
      "rfs.uptodate", g.uptodate && !g.resync_interrupted ? ResourceState::Up : ResourceState::Down,
      kComponent, loop_.time().systemTime());
}

void MirrorIo::rfsReplicate(const core::Replicate& r) {
  const uint64_t id = r.id;
  auto done = [this, id](bool ok, const std::string& detail) {
    feed(engine_.machine().replicationReady(id, ok, detail));
  };
  fence_pending_ = false;
  resync_id_ = 0;
  if (r.role == core::ReplicationRole::Primary) {
    log(LogLevel::Info, "Starting the replication of the directories (primary)");
    rfs_->start("primary",
                takeFullsync() ? std::vector<std::string>{"--full"} : std::vector<std::string>{},
                done);
    return;
  }
  // Off: the module stops, waits or becomes secondary; a degradation ends with the role.
  (void)resources_.set("rfs.degraded", ResourceState::Down, kComponent, loop_.time().systemTime());
  rfs_->stop(done);
}

void MirrorIo::rfsStartResync(const core::StartResync& r) {
  resync_id_ = r.id;
  resync_synced_ = false;
  Millis delay{0};
  if (resync_failures_ > 0) {
    delay = std::min(kMaxRetry, kFirstRetry * (1 << std::min(resync_failures_ - 1, 5)));
  }
  const uint64_t id = r.id;
  const bool full = r.full;
  const bool split_brain = r.split_brain;
  loop_.cancelTimer(resync_timer_);
  resync_timer_ = loop_.addTimer(delay, [this, id, full, split_brain] {
    resync_timer_ = 0;
    if (resync_id_ != id) {
      return;
    }
    const bool whole = takeFullsync();
    log(LogLevel::Info, std::string("Reintegration from the primary begins") +
                            (whole  ? " (fullsync: every file sent whole)"
                             : full ? " (every file compared)"
                                    : ""));
    std::vector<std::string> args;
    if (whole) {
      args.push_back("--full");
    }
    if (full) {
      args.push_back("--compare");  // unrelated generations: no change log applies
    }
    if (split_brain) {
      args.push_back("--quarantine");  // this node's own changes are kept aside first
    }
    if (auto since = takeSecondforce()) {
      args.push_back("--since");
      args.push_back(std::to_string(*since));
      log(LogLevel::Info, "secondforce: only the files modified since " + std::to_string(*since) +
                              " (Unix time) are copied");
    }
    rfs_->start("secondary", args, [this, id](bool ok, const std::string& detail) {
      if (!ok && resync_id_ == id) {
        rfsSecondaryEnded(detail);
      }
    });
  });
}

void MirrorIo::rfsSecondaryEnded(const std::string& why) {
  const uint64_t id = resync_id_;
  if (id == 0) {
    return;  // already handled (its lost event came first)
  }
  resync_id_ = 0;
  if (resync_synced_) {
    // A primary that died closes the link before its heartbeats stop: this secondary, which has
    // every write the primary acknowledged, must not declare itself outdated before it knows.
    // If the heartbeats go on past their timeout, the link alone broke: outdated it is (the
    // primary's acknowledgements wait for that).
    Millis timeout{0};
    for (const auto& hb : config_.heart->heartbeats) {
      timeout = std::max(timeout, hb.timeout);
    }
    log(LogLevel::Error, "The replication link from the primary ended: " + why +
                             "; the heartbeats decide whether the primary is gone");
    loop_.cancelTimer(link_loss_timer_);
    link_loss_timer_ = loop_.addTimer(timeout + kLinkLossMargin, [this] {
      link_loss_timer_ = 0;
      if (engine_.machine().state().main == core::MainState::Second) {
        feed(engine_.machine().replicationLost());
      }
    });
  } else {
    ++resync_failures_;
    log(LogLevel::Error, "Reintegration failed: " + why);
    if (id != kAdopted) {
      feed(engine_.machine().resyncDone(id, false));
    }
  }
}

void MirrorIo::rfsEvent(const nlohmann::json& e) {
  const std::string kind = e.value("kind", "");
  const std::string message = e.value("message", "");
  const bool primary = rfs_->role() == "primary";
  if (kind == "synced") {
    log(LogLevel::Info, message);
    if (primary) {
      feed(engine_.machine().peerResynced());
    } else if (resync_id_ != 0 && !resync_synced_) {
      resync_synced_ = true;
      resync_failures_ = 0;
      if (resync_id_ != kAdopted) {
        feed(engine_.machine().resyncDone(resync_id_, true));
      }
    }
  } else if (kind == "lost") {
    if (primary) {
      log(LogLevel::Error, message);
      setFencePending(rfs_->lastStatus().value("fenced", false) ||
                      message.find("acknowledgements wait") != std::string::npos);
      if (fence_pending_ && !engine_.machine().peerAlive()) {
        // The heartbeats declared it lost already: nothing left to wait for.
        rfsPeerLost();
      }
      feed(engine_.machine().replicationLost());
    } else {
      rfsSecondaryEnded(message);
    }
  } else if (kind == "closed") {
    // The primary's application is stopped and its stream complete: this copy is up to date,
    // whatever the primary does next (it draws a new generation before writing again).
    log(LogLevel::Info, message);
    resync_id_ = 0;
    loop_.cancelTimer(link_loss_timer_);
    link_loss_timer_ = 0;
  } else if (kind == "fence_expired") {
    fence_pending_ = false;
    log(LogLevel::Critical, message);
  } else {
    log(levelOf(e.value("level", "I")), message);
  }
}

void MirrorIo::rfsStatus(const nlohmann::json& status) {
  if (status.value("role", "") != "primary") {
    return;
  }
  const auto now = loop_.time().systemTime();
  // Values (KB/s, the last second), without history: they change all the time.
  (void)resources_.setValue("rfs.rep_bandwidth",
                            std::to_string(status.value("rep_bandwidth_kib_s", int64_t{0})),
                            kComponent, now, HistoryMode::Never);
  (void)resources_.setValue("rfs.rei_bandwidth",
                            std::to_string(status.value("rei_bandwidth_kib_s", int64_t{0})),
                            kComponent, now, HistoryMode::Never);
  if (status.value("fenced", false) && !fence_pending_) {
    setFencePending(true);
  }
}

void MirrorIo::rfsEnded(const std::string& role, const std::string& how) {
  if (role == "secondary") {
    rfsSecondaryEnded("the replication process " + how);
    return;
  }
  if (role != "primary") {
    return;
  }
  // Reference 2.2 (nfsbox failure): the primary goes on ALONE, degraded; its peer waits
  // (degraded_server) until an operator stops and starts this node.
  log(LogLevel::Critical,
      "The replication process " + how +
          ": the replicated directories are no longer replicated (ALONE, degraded); open files "
          "in them were cut. Run halo stop then halo start on this node to replicate again");
  (void)resources_.set("rfs.degraded", ResourceState::Up, kComponent, loop_.time().systemTime());
  // From now on the application writes the plain directories: nothing tracks those changes.
  (void)sys::writeFileAtomic(untrackedMarker(paths_, module_), "1\n");
  fence_pending_ = false;
  feed(engine_.machine().replicationLost());
}

void MirrorIo::setFencePending(bool on) {
  fence_pending_ = on;
  fence_since_ = loop_.time().monotonicTime();
}

void MirrorIo::rfsHeartbeat(const proto::Heartbeat& hb) {
  if (!fence_pending_) {
    return;
  }
  // A heartbeat the secondary sent just before it heard that its reintegration ended still says
  // "not up to date": only those sent after the fence began, settled, are evidence.
  if (loop_.time().monotonicTime() - fence_since_ < kFenceSettle) {
    return;
  }
  // Only its own record proves it: a secondary that still says up to date could take over.
  if (!hb.uptodate || hb.resync_interrupted) {
    fence_pending_ = false;
    log(LogLevel::Info, "The secondary knows it is outdated: writes are acknowledged again");
    rfs_->unfence();
  }
}

void MirrorIo::rfsPeerLost() {
  if (rfs_->role() == "primary") {
    rfs_->peerLost();
  }
  if (fence_pending_) {
    fence_pending_ = false;
    log(LogLevel::Info, "The secondary is gone (no heartbeat): writes are acknowledged again");
    rfs_->unfence();
  }
}

}  // namespace halo::module
