#include <sys/mount.h>

#include <random>

#include "base/thread.h"
#include "rfs/quarantine.h"
#include "rfs/service.h"
#include "rfs/service_util.h"

namespace halo::rfs {

namespace {
constexpr Millis kRetryEvery{200};
// The secondary writes what it applied to its disk this often (and at the end of a
// reintegration, and when it stops): until then the primary keeps tracking those operations
// (acknowledged from the page cache, async="second"). The kernel writes dirty pages back after
// 30 s anyway: this adds little I/O.
constexpr Millis kSyncEvery{10000};
constexpr size_t kMaxHintEntries = 2000000;  // well under a frame's bound
}  // namespace

Result<std::unique_ptr<SecondaryService>> SecondaryService::start(ServiceOptions options,
                                                                  TimeSource& time,
                                                                  EventSink events) {
  std::unique_ptr<SecondaryService> s(
      new SecondaryService(std::move(options), time, std::move(events)));
  HALO_RETURN_IF_ERROR(s->begin());
  return s;
}

SecondaryService::SecondaryService(ServiceOptions options, TimeSource& time, EventSink events)
    : options_(std::move(options)), time_(time), events_(std::move(events)) {}

SecondaryService::~SecondaryService() {
  // A clean stop: what was applied goes to the disk, and the primary hears it before the link
  // closes, so it need not keep tracking it.
  syncNow();
  stopping_ = true;
  durable_cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  if (durable_thread_.joinable()) {
    durable_thread_.join();
  }
  listener_.reset();
  receiver_.reset();
  std::vector<std::thread> manifests;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    manifests.swap(manifest_threads_);
  }
  for (auto& t : manifests) {
    t.join();
  }
  for (const auto& dir : bind_mounts_) {
    ::umount2(dir.c_str(), MNT_DETACH);
  }
  if (journal_) {
    (void)journal_->markClean();  // nothing was applied after the last acknowledgement
  }
}

Status SecondaryService::begin() {
  {
    // A crash of this node as secondary loses only what its disk did not have yet, which the
    // primary still tracks (it counts acknowledgements as final once they are durable here).
    auto state = openStartState(options_, time_);
    if (!state.ok()) {
      return state.status().withPrefix("the replication journal " + options_.journal);
    }
    if (!state->note.empty()) {
      events_({"log", state->note, 'E'});
    }
    base_ = state->base;
    own_ = std::move(state->log);
    journal_ = std::move(state->journal);
    if (options_.quarantine && !own_.empty() && !state->quarantined) {
      HALO_RETURN_IF_ERROR(quarantine());
    }
  }
  for (size_t i = 0; i < options_.dirs.size(); ++i) {
    const ReplicatedDir& d = options_.dirs[i];
    if (::mkdir(d.dir.c_str(), 0755) == 0) {
      events_({"log", "Created the replicated directory " + d.dir, 'I'});
    }
    ApplierOptions ao;
    ao.sync_on_fsync = options_.sync_on_fsync;
    ao.root = static_cast<uint16_t>(i);
    ao.replicated = d.replicated;
    auto a = Applier::open(d.dir, ao);
    if (!a.ok()) {
      return a.status();
    }
    HALO_RETURN_IF_ERROR(checkTocheck((*a)->rootFd(), d));
    (*a)->setTolerant(true);  // every session starts with a reintegration
    appliers_.push_back(std::move(*a));
  }
  // After the appliers hold their descriptors: they write beneath the read-only bind mount.
  for (const auto& d : options_.dirs) {
    if (!d.read_only) {
      continue;
    }
    if (::mount(d.dir.c_str(), d.dir.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return errnoStatus("bind mount " + d.dir, errno);
    }
    bind_mounts_.push_back(d.dir);
    if (::mount(nullptr, d.dir.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      return errnoStatus("read-only remount " + d.dir, errno);
    }
  }
  auto listener =
      LinkListener::listen(options_.local_addr, options_.port, options_.peer_addr, options_.link,
                           [this](AcceptedConnection& c) -> std::optional<std::string> {
                             if (c.hello.kind != SessionKind::Manifest) {
                               return "this node is the secondary: it replicates from its peer";
                             }
                             std::lock_guard<std::mutex> lock(mutex_);
                             manifest_threads_.emplace_back([this, roots = rootFds(),
                                                             ch = std::move(c.channel)]() mutable {
                               serveManifests(std::move(ch), roots, options_.dirs, options_.link);
                             });
                             return std::nullopt;
                           });
  if (!listener.ok()) {
    return listener.status();
  }
  listener_ = std::move(*listener);
  thread_ = namedThread("rfs-secondary", [this] { connect(); });
  durable_thread_ = namedThread("rfs-disk-sync", [this] { syncPeriodically(); });
  return okStatus();
}

void SecondaryService::syncPeriodically() {
  while (!stopping_) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      durable_cv_.wait_for(lock, kSyncEvery, [this] { return stopping_ || sync_soon_; });
      sync_soon_ = false;
    }
    if (!stopping_) {
      syncNow();
    }
  }
}

void SecondaryService::syncNow() {
  std::lock_guard<std::mutex> lock(sync_mutex_);
  StreamReceiver* r = live_receiver_.load();
  if (r == nullptr) {
    return;
  }
  uint64_t pending = 0;
  {
    // Set when its marker is applied: everything before it is, whatever `applied` says yet.
    std::lock_guard<std::mutex> state_lock(mutex_);
    pending = pending_base_;
  }
  const uint64_t applied = r->applied();
  if (applied <= durable_ && pending == 0) {
    return;
  }
  // What was applied before the sync began is on the disk once it returns.
  bool ok = true;
  for (const auto& a : appliers_) {
    ok = a->syncToDisk().ok() && ok;
  }
  if (ok && pending != 0 && journal_) {
    // The reintegration that drew it is on the disk: its sync point now (before the primary
    // hears of it), unless another reintegration began meanwhile (under the lock: ev.begin).
    std::string error;
    {
      std::lock_guard<std::mutex> state_lock(mutex_);
      if (pending_base_ == pending) {
        pending_base_ = 0;
        if (Status st = journal_->resetTo(pending); !st.ok()) {
          error = st.message();
        } else {
          base_ = pending;
          own_.clear();
        }
      }
    }
    if (!error.empty()) {
      events_({"log", "Cannot write the replication journal: " + error, 'E'});
    }
  }
  if (ok && applied > durable_) {
    durable_ = applied;
    r->markDurable(applied);
  }
}

std::vector<int> SecondaryService::rootFds() const {
  std::vector<int> out;
  for (const auto& a : appliers_) {
    out.push_back(a->rootFd());
  }
  return out;
}

void SecondaryService::connect() {
  Hello hello;
  hello.kind = SessionKind::Replicate;
  hello.module_id = options_.link.module_id;
  hello.session = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  hello.count = static_cast<uint8_t>(std::max(1u, std::min(options_.connections, 32u)));
  hello.flags = options_.full ? kHelloFull : 0;
  const auto deadline = time_.monotonicTime() + options_.connect_for;
  Result<ConnectedSession> s = unavailable("not tried");
  while (!stopping_) {
    s = connectSession(options_.local_addr, options_.peer_addr, options_.port, hello,
                       options_.link);
    if (s.ok() || time_.monotonicTime() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(kRetryEvery);
    hello.session += 1;  // a fresh session: the primary drops the unfinished one
  }
  if (stopping_) {
    return;
  }
  if (!s.ok()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      state_ = "ended";
      end_reason_ = s.status().message();
    }
    events_(
        {"lost", "Cannot reach the primary's replication process: " + s.status().message(), 'E'});
    return;
  }
  const size_t count = s->channels.size();
  const std::string kind = s->channels.front()->kind();
  std::vector<Applier*> appliers;
  for (auto& a : appliers_) {
    appliers.push_back(a.get());
  }
  StreamReceiver::Events ev;
  ev.begin = [this](bool full) {
    std::string error;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_base_ = 0;  // a new reintegration: the last one's sync point is not reached
      if (full && journal_) {
        // Before the first change: an interrupted full reintegration leaves changes no log
        // describes, so this node no longer derives from any sync point.
        if (Status st = journal_->resetTo(0); !st.ok()) {
          error = st.message();
        }
        base_ = 0;
      }
    }
    if (!error.empty()) {
      events_({"log", "Cannot write the replication journal: " + error, 'E'});
    }
  };
  ev.resynced = [this](uint64_t sync_id) {
    if (journal_) {
      // The sync point certifies what the reintegration wrote and replaces this node's own
      // log: it is written once that is on the disk (the next sync, asked for now), not
      // before: a power loss of both nodes could otherwise leave copies, or the overwriting
      // of this node's own changes, in no log. The primary counts from it once this node
      // confirms that sync.
      std::lock_guard<std::mutex> lock(mutex_);
      pending_base_ = sync_id;
      sync_soon_ = true;
    }
    durable_cv_.notify_all();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      state_ = "synced";
    }
    uint64_t tolerated = 0;
    for (const auto& a : appliers_) {
      tolerated += a->tolerated();
    }
    events_({"synced",
             "Reintegration ended (synchronize)" +
                 (tolerated > 0
                      ? ", " + std::to_string(tolerated) + " live operations made redundant by it"
                      : std::string()),
             'I'});
  };
  ev.progress = [this](const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex_);
    progress_ = text;
  };
  ev.ended = [this](const std::string& why, bool planned) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      state_ = planned ? "closed" : "ended";
      end_reason_ = why;
    }
    if (planned) {
      events_({"closed", "The primary ended the replication session: everything it wrote is here",
               'I'});
    } else {
      events_({"lost", "Replication link lost: " + why, 'E'});
    }
  };
  {
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = "reintegrating";
  }
  receiver_ = StreamReceiver::start(std::move(s->channels), s->first_seq, std::move(appliers),
                                    options_.link, std::move(ev));
  live_receiver_ = receiver_.get();
  events_({"connected",
           "Connected to the primary (" + std::to_string(count) + " " + kind + " connection" +
               (count > 1 ? "s" : "") + "): reintegration",
           'I'});
  if (base_ != 0 && !options_.full && !options_.compare && options_.modified_after == 0) {
    sendSince();
    return;
  }
  // What this node holds, so that the primary sends missing files without comparing them.
  // A tree too large for one frame gets none: every file is compared then.
  std::vector<std::string> hints;
  bool compare_all = false;
  for (size_t i = 0; i < appliers_.size() && !stopping_ && !compare_all; ++i) {
    WalkOptions o;
    o.block_digests = false;
    o.include = options_.dirs[i].replicated;
    auto walk = walkTree("/proc/self/fd/" + std::to_string(appliers_[i]->rootFd()), o);
    if (!walk.ok() || walk->manifest.entries.size() > kMaxHintEntries) {
      compare_all = true;
      break;
    }
    hints.push_back(encodeRooted(static_cast<uint16_t>(i), encodeManifest(walk->manifest)));
  }
  for (size_t i = 0; !compare_all && i < hints.size(); ++i) {
    if (!receiver_->sendFrame(FrameType::Hint, hints[i])) {
      return;
    }
  }
  if (options_.modified_after > 0) {
    SinceInfo since;
    since.modified_after = static_cast<uint64_t>(options_.modified_after);
    if (!receiver_->sendFrame(FrameType::Since, encodeSince(since))) {
      return;
    }
  }
  receiver_->sendFrame(FrameType::HintsDone, compare_all ? "compare" : "");
}

Status SecondaryService::quarantine() {
  std::vector<std::string> dirs;
  std::vector<int> roots;
  for (const auto& d : options_.dirs) {
    dirs.push_back(d.dir);
    roots.push_back(::open(d.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  auto report = quarantineChanges(own_, dirs, roots, options_.quarantine_dir, time_.systemTime());
  for (int fd : roots) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  if (!report.ok()) {
    // Nothing is resynchronised over changes that could not be kept.
    return report.status().withPrefix("keeping this node's split-brain changes");
  }
  std::string listed;
  for (size_t i = 0; i < report->copied.size() && i < 20; ++i) {
    listed += (i == 0 ? "" : ", ") + report->copied[i];
  }
  if (report->copied.size() > 20) {
    listed += ", ...";
  }
  events_({"log",
           "Split brain: what this node changed while isolated (" +
               std::to_string(report->copied.size()) + " objects, " +
               std::to_string(report->bytes) + " bytes) is kept in " + report->dir +
               " (CHANGES.txt) before the resynchronisation from the primary" +
               (listed.empty() ? "" : ": " + listed) +
               (report->errors.empty()
                    ? ""
                    : "; " + std::to_string(report->errors.size()) + " could not be copied"),
           'C'});
  quarantine_dir_ = report->dir;
  if (journal_) {
    HALO_RETURN_IF_ERROR(journal_->markQuarantined());
  }
  return okStatus();
}

void SecondaryService::sendSince() {
  // Its sync point and its own changes since (it wrote as primary): with the primary's log, what
  // the reintegration must bring back to the primary's state.
  SinceInfo since;
  since.base = base_;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    since.log = own_.encode();
  }
  if (!receiver_->sendFrame(FrameType::Since, encodeSince(since))) {
    return;
  }
  receiver_->sendFrame(FrameType::HintsDone, "");
}

nlohmann::json SecondaryService::status() const {
  nlohmann::json j = {{"role", "secondary"}};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    j["state"] = state_;
    if (!progress_.empty()) {
      j["reintegration"] = {{"text", progress_}};
    }
    if (!end_reason_.empty()) {
      j["end_reason"] = end_reason_;
    }
  }
  uint64_t tolerated = 0;
  for (const auto& a : appliers_) {
    tolerated += a->tolerated();
  }
  j["tolerated"] = tolerated;
  j["base"] = base_.load();
  if (!quarantine_dir_.empty()) {
    j["quarantine"] = quarantine_dir_;
  }
  nlohmann::json dirs = nlohmann::json::array();
  for (const auto& d : options_.dirs) {
    dirs.push_back(d.dir);
  }
  j["dirs"] = dirs;
  return j;
}

}  // namespace halo::rfs
