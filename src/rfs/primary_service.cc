#include <malloc.h>
#include <unistd.h>

#include <cinttypes>
#include <cstring>
#include <optional>
#include <random>

#include "base/thread.h"
#include "rfs/service.h"
#include "rfs/service_util.h"

namespace halo::rfs {

void tuneAllocatorForRecords() {
  // Records stay below the mmap threshold (no mmap/munmap per write), and an arena keeps up to
  // a full send queue of freed memory instead of trimming it at every free.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(LinkOptions().queue_limit));
}

namespace {
constexpr Millis kSampleEvery{1000};
// The change log reaches the journal this often (lazily: DESIGN 6.3).
constexpr Millis kJournalEvery{2000};
// The primary syncs its own disk as often as the secondary does (secondary_service.cc): until it
// has, the activity log keeps what the secondary confirmed.
constexpr Millis kLocalSyncEvery{10000};

uint64_t randomId() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

// What a session's reintegration is decided from: the log and sync point when it started.
struct SessionPlan {
  ChangeLog changes;
  uint64_t base = 0;
  std::optional<SinceInfo> since;
};
}  // namespace

Result<std::unique_ptr<PrimaryService>> PrimaryService::start(ServiceOptions options,
                                                              TimeSource& time, EventSink events) {
  std::unique_ptr<PrimaryService> s(
      new PrimaryService(std::move(options), time, std::move(events)));
  HALO_RETURN_IF_ERROR(s->begin());
  return s;
}

PrimaryService::PrimaryService(ServiceOptions options, TimeSource& time, EventSink events)
    : options_(std::move(options)), time_(time), events_(std::move(events)) {}

PrimaryService::~PrimaryService() { (void)stop(); }

Status PrimaryService::begin() {
  HubOptions ho;
  ho.lock_timeout = options_.lock_timeout;
  ho.link = options_.link;
  ho.random = options_.random ? options_.random : randomId;
  Hub::Events he;
  he.lost = [this](const std::string& why, bool fenced) {
    events_({"lost",
             "Replication link lost: " + why +
                 (fenced ? "; acknowledgements wait until the secondary is known to be "
                           "outdated"
                         : ""),
             'E'});
  };
  he.fence_expired = [this] {
    events_({"fence_expired",
             "The secondary did not confirm it is outdated within locktimeout: acknowledging "
             "writes it may not have",
             'C'});
  };
  hub_ = std::make_unique<Hub>(options_.dirs.size(), ho, time_, std::move(he));
  {
    // Before the mounts: every operation of the application is tracked from the first.
    auto state = openStartState(options_, time_);
    if (!state.ok()) {
      return state.status().withPrefix("the replication journal " + options_.journal);
    }
    if (!state->note.empty()) {
      events_({"log", state->note, 'E'});
    }
    hub_->restoreChanges(state->base, std::move(state->log));
    journal_ = std::move(state->journal);
    activity_ = std::move(state->activity);
  }
  last_flush_ = time_.monotonicTime();
  for (size_t i = 0; i < options_.dirs.size(); ++i) {
    const ReplicatedDir& d = options_.dirs[i];
    // The guard before the mount: an unmounted file system must not be replicated as empty.
    int probe = ::open(d.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (probe < 0) {
      return errnoStatus("replicated directory " + d.dir, errno);
    }
    Status guard = checkTocheck(probe, d);
    ::close(probe);
    HALO_RETURN_IF_ERROR(guard);
    FuseOptions fo;
    fo.dir = d.dir;
    fo.replicated = d.replicated;
    fo.threads = options_.fuse_threads;
    fo.activity = activity_.get();
    fo.root = static_cast<uint16_t>(i);
    auto fs = FuseFs::mount(std::move(fo), hub_->sink(static_cast<uint16_t>(i)));
    if (!fs.ok()) {
      return fs.status().withPrefix("mounting the interception over " + d.dir);
    }
    mounts_.push_back(std::move(*fs));
  }
  for (auto& m : mounts_) {
    // syncfs needs a descriptor open for reading (the mount's root one is O_PATH).
    const int fd = ::openat(m->rootFd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      return errnoStatus("opening the replicated directory beneath its mount", errno);
    }
    local_fds_.push_back(fd);
  }
  last_sample_ = time_.monotonicTime();
  thread_ = namedThread("rfs-primary", [this] { loop(); });
  local_thread_ = namedThread("rfs-disk-sync", [this] { syncPeriodically(); });
  auto listener =
      LinkListener::listen(options_.local_addr, options_.port, options_.peer_addr, options_.link,
                           [this](AcceptedConnection& c) { return onConnection(c); });
  if (!listener.ok()) {
    return listener.status();
  }
  listener_ = std::move(*listener);
  return okStatus();
}

Status PrimaryService::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      return okStatus();
    }
    stopping_ = true;
  }
  cv_.notify_all();
  local_cv_.notify_all();
  listener_.reset();
  if (thread_.joinable()) {
    thread_.join();
  }
  if (local_thread_.joinable()) {
    local_thread_.join();
  }
  std::shared_ptr<Resyncer> resyncer;
  std::vector<std::thread> manifests;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    resyncer = std::move(resyncer_);
    manifests.swap(manifest_threads_);
  }
  if (hub_) {
    syncLocally();             // a clean stop leaves the activity log nothing to keep
    hub_->closeSession(true);  // the runtime stops us after the application: all is written
    hub_->reap();
  }
  resyncer.reset();
  for (auto& t : manifests) {
    t.join();
  }
  Status result;
  for (auto& m : mounts_) {
    if (Status s = m->unmount(); !s.ok() && result.ok()) {
      result = s;
    }
  }
  mounts_.clear();
  for (int fd : local_fds_) {
    ::close(fd);
  }
  local_fds_.clear();
  if (journal_ && hub_) {
    // Nothing changes any more: the log is complete on disk, and this stop was clean.
    flushJournal();
    if (journal_error_.empty()) {
      (void)journal_->markClean();
    }
  }
  return result;
}

void PrimaryService::flushJournal() {
  last_flush_ = time_.monotonicTime();
  if (!journal_) {
    return;
  }
  JournalDelta d = hub_->journalDelta();
  if (d.empty() && d.base == written_base_ && d.complete == written_complete_) {
    return;
  }
  if (Status s = journal_->write(d); !s.ok()) {
    // Rows are missing on disk now: whatever it says later, it cannot be trusted.
    hub_->markChangesIncomplete();
    if (journal_error_.empty()) {
      events_({"log",
               "Cannot write the replication journal (" + s.message() +
                   "): the next reintegration compares every file",
               'E'});
    }
    journal_error_ = s.message();
    return;
  }
  written_base_ = d.base;
  written_complete_ = d.complete;
  hub_->journalWritten(d.upto);
}

void PrimaryService::trimActivity() {
  if (!activity_) {
    return;
  }
  if (activity_->broken() && !activity_broken_) {
    // Nothing tracks the changes any more: only a full reintegration is safe after a crash.
    activity_broken_ = true;
    hub_->markChangesIncomplete();
    events_({"log",
             "Cannot write the activity log (" + options_.activity_log +
                 "): after a crash the next reintegration compares every file",
             'E'});
  }
  activity_->safeUpTo(hub_->safeSeq());
  activity_->noteClock();
}

void PrimaryService::syncLocally() {
  if (!hub_) {
    return;
  }
  std::lock_guard<std::mutex> lock(local_mutex_);
  const uint64_t seq = hub_->lastSeq();  // applied before the sync begins: covered by it
  for (int fd : local_fds_) {
    if (::syncfs(fd) != 0) {
      if (!local_error_) {
        local_error_ = true;
        events_({"log",
                 std::string("Cannot sync a replicated directory to disk (") +
                     std::strerror(errno) + "): the activity log keeps every change until it can",
                 'E'});
      }
      return;
    }
  }
  local_error_ = false;
  hub_->localSynced(seq);
}

void PrimaryService::syncPeriodically() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      local_cv_.wait_for(lock, kLocalSyncEvery, [this] { return stopping_; });
      if (stopping_) {
        return;
      }
    }
    syncLocally();
  }
}

void PrimaryService::unfence() { hub_->unfence(); }

void PrimaryService::peerLost() {
  post([this] {
    if (!hub_->hasSession()) {
      return;
    }
    events_({"log",
             "The secondary is gone (no heartbeat): its replication session ends; what it lacks "
             "is tracked",
             'I'});
    std::shared_ptr<Resyncer> r;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      r = std::move(resyncer_);
      ++generation_;  // events of that session are stale now
    }
    hub_->closeSession();
    hub_->reap();
  });
}

std::vector<int> PrimaryService::rootFds() const {
  std::vector<int> out;
  for (const auto& m : mounts_) {
    out.push_back(m->rootFd());
  }
  return out;
}

void PrimaryService::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_all();
}

void PrimaryService::loop() {
  while (true) {
    std::deque<std::function<void()>> tasks;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait_for(lock, kSampleEvery, [this] { return stopping_ || !tasks_.empty(); });
      if (stopping_) {
        return;
      }
      tasks.swap(tasks_);
      // Sessions whose connections did not all arrive in time.
      const auto now = time_.monotonicTime();
      for (auto it = gathering_.begin(); it != gathering_.end();) {
        it = now - it->second.since > options_.link.connect_timeout ? gathering_.erase(it)
                                                                    : std::next(it);
      }
    }
    for (auto& t : tasks) {
      t();
    }
    sample();
    if (time_.monotonicTime() - last_flush_ >= kJournalEvery) {
      flushJournal();
    }
    trimActivity();
  }
}

std::optional<std::string> PrimaryService::onConnection(AcceptedConnection& c) {
  if (c.hello.kind == SessionKind::Manifest) {
    std::vector<int> roots = rootFds();
    std::lock_guard<std::mutex> lock(mutex_);
    manifest_threads_.emplace_back([this, roots, ch = std::move(c.channel)]() mutable {
      serveManifests(std::move(ch), roots, options_.dirs, options_.link);
    });
    return std::nullopt;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  auto& g = gathering_[c.hello.session];
  if (g.channels.empty()) {
    g.since = time_.monotonicTime();
  }
  g.channels.push_back(std::move(c.channel));
  g.flags |= c.hello.flags;
  if (g.channels.size() >= c.hello.count) {
    auto channels = std::make_shared<std::vector<std::unique_ptr<Channel>>>(std::move(g.channels));
    const bool whole = (g.flags & kHelloFull) != 0;
    gathering_.erase(c.hello.session);
    tasks_.push_back([this, channels, whole] { startSession(std::move(*channels), whole); });
    cv_.notify_all();
  }
  return std::nullopt;
}

void PrimaryService::startSession(std::vector<std::unique_ptr<Channel>> channels,
                                  bool whole_files) {
  // The previous session and its reintegration go first, in that order (its threads joined).
  std::shared_ptr<Resyncer> old;
  uint64_t gen = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    old = std::move(resyncer_);
    gen = ++generation_;
    resync_done_ = false;
    last_progress_ = {};
  }
  hub_->closeSession();
  hub_->reap();
  old.reset();
  const bool whole = whole_files || options_.full;
  options_.full = false;  // fullsync: one reintegration only
  const size_t count = channels.size();
  const std::string kind = channels.front()->kind();
  auto holder = std::make_shared<std::atomic<uint64_t>>(0);  // the hub's id of the session
  auto plan = std::make_shared<SessionPlan>();               // filled with the session
  StreamSender::Events ev;
  auto current = [this, gen](const std::function<void(Resyncer&)>& fn) {
    post([this, gen, fn] {
      std::shared_ptr<Resyncer> r;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (gen != generation_) {
          return;
        }
        r = resyncer_;
      }
      if (r) {
        fn(*r);
      }
    });
  };
  ev.need = [current](NeedRanges n) {
    auto shared = std::make_shared<NeedRanges>(std::move(n));
    current([shared](Resyncer& r) { r.onNeed(*shared); });
  };
  ev.hint = [this, current](uint16_t root, std::string bytes) {
    auto m = decodeManifest(bytes);
    if (!m.ok()) {
      events_({"log", "Ignoring a bad hint from the secondary: " + m.status().message(), 'E'});
      return;
    }
    auto shared = std::make_shared<Manifest>(std::move(*m));
    current([root, shared](Resyncer& r) { r.setHint(root, *shared); });
  };
  ev.since = [current, plan](SinceInfo since) {
    auto shared = std::make_shared<SinceInfo>(std::move(since));
    current([plan, shared](Resyncer&) { plan->since = *shared; });
  };
  ev.hints_done = [this, current, plan, whole](bool compare_all) {
    current([this, plan, compare_all, whole](Resyncer& r) {
      // Without hints (a fast reintegration was asked): every file is compared if it is not.
      if (compare_all || (plan->since && plan->since->base != 0)) {
        r.noHints();
      }
      if (plan->since && plan->since->modified_after > 0) {
        r.copyOnlyModifiedAfter(static_cast<int64_t>(plan->since->modified_after));
        events_({"log",
                 "secondforce: only the files modified since " +
                     std::to_string(plan->since->modified_after) +
                     " (Unix time) are copied; the others are taken as identical",
                 'I'});
      }
      std::string why;
      if (whole) {
        why = "fullsync";
      } else if (!plan->since || plan->since->base == 0) {
        why = plan->since ? "secondforce" : "the secondary holds no sync point";
      } else if (plan->since->base != plan->base) {
        why = "the secondary's sync point is not this node's";
      } else if (!plan->changes.complete()) {
        why = "this node's change log is incomplete";
      } else {
        auto theirs = ChangeLog::decode(plan->since->log);
        if (!theirs.ok()) {
          why = "the secondary's change log is unreadable (" + theirs.status().message() + ")";
        } else if (!theirs->complete()) {
          why = "the secondary's change log is incomplete";
        } else {
          ChangeLog all = plan->changes;
          all.merge(*theirs);
          events_({"log",
                   "Reintegration of the secondary begins: changes only (" +
                       std::to_string(all.paths()) + " paths, " + std::to_string(all.dirtyBytes()) +
                       " bytes of changed blocks)",
                   'I'});
          r.setPlan(std::move(all), plan->changes);
        }
      }
      if (!r.fast()) {
        events_({"log", "Reintegration of the secondary begins: every file compared (" + why + ")",
                 'I'});
      }
      r.start();
    });
  };
  ev.lost = [this, holder, gen](const std::string& why) {
    hub_->sessionLost(holder->load(), why);  // fences at once, on this thread
    post([this, gen] {
      hub_->reap();
      std::shared_ptr<Resyncer> r;
      std::lock_guard<std::mutex> lock(mutex_);
      if (gen == generation_) {
        r = std::move(resyncer_);  // destroyed after the lock: its threads may want it
      }
      (void)r;
    });
  };
  uint64_t session_id = 0;
  auto session = hub_->startSession(std::move(channels), std::move(ev), &session_id, &plan->changes,
                                    &plan->base);
  holder->store(session_id);
  std::vector<ResyncRoot> roots;
  for (size_t i = 0; i < mounts_.size(); ++i) {
    roots.push_back({mounts_[i].get(), options_.dirs[i].replicated});
  }
  Resyncer::Events rev;
  rev.progress = [this](const ResyncProgress& p) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last_progress_ = p;
    }
    events_({"progress", "Reintegration: " + p.describe(), 'I'});
  };
  rev.done = [this, gen](bool ok, const std::string& detail) {
    post([this, gen, ok, detail] {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (gen != generation_) {
          return;
        }
        resync_done_ = ok;
        if (resyncer_) {
          last_progress_ = resyncer_->progress();
        }
      }
      if (ok) {
        flushJournal();  // the new sync point, at once (a crash now must not lose it)
        events_({"synced", "Reintegration ended (synchronize): " + detail, 'I'});
      } else {
        // The secondary sees its link end and asks again (its module runtime decides when).
        events_({"log", "Reintegration failed: " + detail, 'E'});
        std::shared_ptr<Resyncer> r;
        {
          std::lock_guard<std::mutex> lock(mutex_);
          r = std::move(resyncer_);
        }
        hub_->closeSession();
        hub_->reap();
      }
    });
  };
  ResyncOptions ro = options_.resync;
  ro.whole_files = whole;
  if (ro.whole_files) {
    events_({"log", "fullsync: this reintegration sends every file whole", 'I'});
  }
  auto r =
      std::make_shared<Resyncer>(std::move(roots), *hub_, session_id, ro, time_, std::move(rev));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    resyncer_ = std::move(r);
  }
  events_({"connected",
           "The secondary connected (" + std::to_string(count) + " " + kind + " connection" +
               (count > 1 ? "s" : "") + ")",
           'I'});
  if (session->lost()) {
    hub_->sessionLost(session_id, session->lostReason());
  }
}

void PrimaryService::sample() {
  const auto now = time_.monotonicTime();
  const double dt = std::chrono::duration<double>(now - last_sample_).count();
  if (dt < 0.5) {
    return;
  }
  std::shared_ptr<Resyncer> r;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    r = resyncer_;
  }
  const uint64_t sent = hub_->bytesSent();
  const uint64_t copied = r ? r->progress().bytes_copied : last_copied_;
  const uint64_t d_sent = sent >= last_sent_ ? sent - last_sent_ : 0;
  const uint64_t d_copied = copied >= last_copied_ ? copied - last_copied_ : 0;
  std::lock_guard<std::mutex> lock(mutex_);
  rei_kib_s_ = static_cast<double>(d_copied) / 1024.0 / dt;
  rep_kib_s_ = static_cast<double>(d_sent > d_copied ? d_sent - d_copied : 0) / 1024.0 / dt;
  last_sent_ = sent;
  last_copied_ = r ? copied : 0;
  last_sample_ = now;
}

nlohmann::json PrimaryService::status() const {
  std::shared_ptr<Resyncer> r;
  nlohmann::json j = {{"role", "primary"}};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    r = resyncer_;
    j["rep_bandwidth_kib_s"] = static_cast<int64_t>(rep_kib_s_);
    j["rei_bandwidth_kib_s"] = static_cast<int64_t>(rei_kib_s_);
    j["resync_done"] = resync_done_;
  }
  const ChangeLog changes = hub_->changes();
  j["changes"] = {{"base", hub_->base()},
                  {"complete", changes.complete()},
                  {"paths", changes.paths()},
                  {"dirty_bytes", changes.dirtyBytes()}};
  j["not_durable"] = hub_->notDurable();
  j["session"] = hub_->hasSession();
  j["synced"] = hub_->synced();
  j["fenced"] = hub_->fenced();
  j["bytes_sent"] = hub_->bytesSent();
  if (r) {
    const ResyncProgress p = r->progress();
    j["reintegration"] = {{"mode", p.mode},
                          {"phase", p.phase},
                          {"files_done", p.files_done},
                          {"files_total", p.files_total},
                          {"bytes_done", p.bytes_done},
                          {"bytes_total", p.bytes_total},
                          {"bytes_copied", p.bytes_copied},
                          {"bytes_hashed", p.bytes_hashed},
                          {"seconds", p.seconds},
                          {"eta_seconds", p.eta_seconds},
                          {"text", p.describe()}};
  }
  nlohmann::json dirs = nlohmann::json::array();
  for (const auto& d : options_.dirs) {
    dirs.push_back(d.dir);
  }
  j["dirs"] = dirs;
  if (listener_) {
    j["refused_connections"] = listener_->refused();
    if (listener_->refused() > 0) {
      j["last_refusal"] = listener_->lastRefusal();
    }
  }
  return j;
}

}  // namespace halo::rfs
