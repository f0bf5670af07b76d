#include "rfs/activity_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

namespace halo::rfs {

namespace {

// An empty file (an inode, no data block: likely to work on a full file system), synced with
// its directory entry. Best effort: if it fails, nothing more can be done here.
void createDurably(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return;
  }
  ::fsync(fd);
  ::close(fd);
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

constexpr int kSchemaVersion = 1;
constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS al_epochs(id INTEGER PRIMARY KEY, start_us INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS al_entries(epoch INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " root INTEGER NOT NULL, path TEXT NOT NULL, zone INTEGER NOT NULL,"
    " PRIMARY KEY(epoch, kind, root, path, zone)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS al_state(key TEXT PRIMARY KEY, value INTEGER NOT NULL);";
// A loop that keeps finding its need uncovered is a bug; bounded all the same.
constexpr int kMaxRounds = 1000;

Status setState(Database& db, const std::string& key, int64_t value) {
  HALO_ASSIGN_OR_RETURN(Statement st,
                        db.prepare("INSERT INTO al_state(key, value) VALUES(?, ?) ON CONFLICT(key) "
                                   "DO UPDATE SET value = excluded.value"));
  return st.bindText(1, key).bindInt(2, value).run();
}

}  // namespace

ActivityLog::Ticket& ActivityLog::Ticket::operator=(Ticket&& o) noexcept {
  if (this != &o) {
    release();
    log_ = o.log_;
    epoch_ = o.epoch_;
    seq_ = o.seq_;
    o.log_ = nullptr;
  }
  return *this;
}

void ActivityLog::Ticket::release() {
  if (log_ != nullptr) {
    log_->released(epoch_, seq_);
    log_ = nullptr;
  }
}

Result<std::unique_ptr<ActivityLog>> ActivityLog::open(const std::string& path, Options options,
                                                       TimeSource& time) {
  HALO_ASSIGN_OR_RETURN(Database db, Database::open(path));
  HALO_RETURN_IF_ERROR(db.ensureSchema(kSchemaVersion, kSchema));
  std::unique_ptr<ActivityLog> log(new ActivityLog(std::move(db), options, time));
  HALO_RETURN_IF_ERROR(log->load());
  return log;
}

int64_t ActivityLog::nowUs() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             time_.systemTime().time_since_epoch())
      .count();
}

Status ActivityLog::load() {
  recovered_.zone_size = options_.zone_size;
  {
    HALO_ASSIGN_OR_RETURN(Statement st, db_.prepare("SELECT key, value FROM al_state"));
    while (true) {
      HALO_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) {
        break;
      }
      if (st.columnText(0) == "zone_size" && st.columnInt(1) > 0) {
        recovered_.zone_size = static_cast<uint64_t>(st.columnInt(1));
      } else if (st.columnText(0) == "last_commit_us") {
        recovered_.last_commit_us = st.columnInt(1);
      }
    }
  }
  {
    HALO_ASSIGN_OR_RETURN(Statement st, db_.prepare("SELECT min(start_us) FROM al_epochs"));
    HALO_ASSIGN_OR_RETURN(bool row, st.step());
    if (row && !st.columnIsNull(0)) {
      recovered_.oldest_start_us = st.columnInt(0);
    }
  }
  HALO_ASSIGN_OR_RETURN(Statement st,
                        db_.prepare("SELECT DISTINCT kind, root, path, zone FROM al_entries"));
  while (true) {
    HALO_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) {
      break;
    }
    const int64_t kind = st.columnInt(0);
    const int64_t root = st.columnInt(1);
    std::string path = st.columnText(2);
    if (kind < 1 || kind > static_cast<int64_t>(Kind::Tail) || root < 0 || root > UINT16_MAX ||
        st.columnInt(3) < 0 || !validRelativePath(path, true)) {
      // Not ours to make sense of (damage, another version): what it named is unknown, so
      // only a full reintegration is safe.
      recovered_.keys.push_back({Kind::Linked, 0, "", 0});
      continue;
    }
    recovered_.keys.push_back({static_cast<Kind>(kind), static_cast<uint16_t>(root),
                               std::move(path), static_cast<uint64_t>(st.columnInt(3))});
  }
  return okStatus();
}

Status ActivityLog::reset() {
  const int64_t now = nowUs();
  Status written = db_.transaction([&]() -> Status {
    HALO_RETURN_IF_ERROR(db_.exec("DELETE FROM al_entries; DELETE FROM al_epochs;"));
    HALO_ASSIGN_OR_RETURN(Statement st,
                          db_.prepare("INSERT INTO al_epochs(id, start_us) VALUES(1, ?)"));
    HALO_RETURN_IF_ERROR(st.bindInt(1, now).run());
    HALO_RETURN_IF_ERROR(setState(db_, "zone_size", static_cast<int64_t>(options_.zone_size)));
    return setState(db_, "last_commit_us", now);
  });
  HALO_RETURN_IF_ERROR(written);
  std::lock_guard<std::mutex> lock(mutex_);
  epochs_.clear();
  Epoch first;
  first.id = 1;
  first.start_us = now;
  epochs_.push_back(std::move(first));
  recovered_ = Recovered{};
  return okStatus();
}

ActivityLog::Epoch* ActivityLog::epochLocked(uint64_t id) {
  for (auto& e : epochs_) {
    if (e.id == id) {
      return &e;
    }
  }
  return nullptr;
}

std::optional<ActivityLog::Ticket> ActivityLog::admit(const Need& need) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (broken_ || epochs_.empty()) {
    return Ticket();  // nothing tracked: the owner has marked the change log incomplete
  }
  Epoch& cur = epochs_.back();
  if (need.born == 0 || need.born != cur.id) {
    for (const Key& k : need.keys) {
      if (cur.keys.count(k) == 0) {
        return std::nullopt;
      }
    }
  }
  ++cur.inflight;
  return Ticket(this, cur.id);
}

Status ActivityLog::activate(const Need& need) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (broken_ || epochs_.empty()) {
    return error_;
  }
  bool any = false;
  for (const Key& k : need.keys) {
    if (epochs_.back().keys.count(k) == 0) {
      queued_.insert(k);
      any = true;
    }
  }
  if (!any) {
    return okStatus();
  }
  const uint64_t mine = next_batch_;
  for (int round = 0; done_batch_ < mine && round < kMaxRounds; ++round) {
    if (busy_) {
      cv_.wait(lock);
      continue;
    }
    // This thread writes what every waiting thread queued (group commit).
    busy_ = true;
    std::set<Key> batch;
    batch.swap(queued_);
    const uint64_t id = next_batch_++;
    // A full epoch gives way to a new one once the one before it is gone.
    const bool roll =
        (epochs_.back().keys.size() >= options_.capacity ||
         nowUs() - epochs_.back().start_us >=
             std::chrono::duration_cast<std::chrono::microseconds>(options_.epoch_age).count()) &&
        epochs_.size() == 1 && !batch.empty();
    const uint64_t epoch = epochs_.back().id + (roll ? 1 : 0);
    const int64_t now = nowUs();
    lock.unlock();
    Status s = db_.transaction([&]() -> Status {
      if (roll) {
        HALO_ASSIGN_OR_RETURN(Statement e,
                              db_.prepare("INSERT INTO al_epochs(id, start_us) VALUES(?, ?)"));
        HALO_RETURN_IF_ERROR(e.bindInt(1, static_cast<int64_t>(epoch)).bindInt(2, now).run());
      }
      HALO_ASSIGN_OR_RETURN(Statement ins, db_.prepare("INSERT OR IGNORE INTO al_entries(epoch, "
                                                       "kind, root, path, zone) "
                                                       "VALUES(?, ?, ?, ?, ?)"));
      for (const Key& k : batch) {
        HALO_RETURN_IF_ERROR(ins.bindInt(1, static_cast<int64_t>(epoch))
                                 .bindInt(2, static_cast<int64_t>(k.kind))
                                 .bindInt(3, k.root)
                                 .bindText(4, k.path)
                                 .bindInt(5, static_cast<int64_t>(k.zone))
                                 .run());
        ins.reset();
      }
      return setState(db_, "last_commit_us", now);
    });
    lock.lock();
    busy_ = false;
    if (!s.ok()) {
      markBroken(s);
    } else {
      if (roll) {
        Epoch e;
        e.id = epoch;
        e.start_us = now;
        epochs_.push_back(std::move(e));
      }
      epochs_.back().keys.insert(batch.begin(), batch.end());
    }
    done_batch_ = id;
    cv_.notify_all();
  }
  return broken_ ? error_ : okStatus();
}

void ActivityLog::released(uint64_t epoch, uint64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (Epoch* e = epochLocked(epoch)) {
    --e->inflight;
    e->max_seq = std::max(e->max_seq, seq);
  }
}

void ActivityLog::safeUpTo(uint64_t seq) {
  std::unique_lock<std::mutex> lock(mutex_);
  // Only an epoch that is no longer current: it admits nothing new, its count only falls.
  while (epochs_.size() > 1 && !busy_ && !broken_) {
    const Epoch& old = epochs_.front();
    if (old.inflight != 0 || old.max_seq > seq) {
      return;
    }
    const int64_t id = static_cast<int64_t>(old.id);
    Status s = writeExclusive(lock, [&]() -> Status {
      return db_.transaction([&]() -> Status {
        HALO_ASSIGN_OR_RETURN(Statement del, db_.prepare("DELETE FROM al_entries WHERE epoch = ?"));
        HALO_RETURN_IF_ERROR(del.bindInt(1, id).run());
        HALO_ASSIGN_OR_RETURN(Statement ep, db_.prepare("DELETE FROM al_epochs WHERE id = ?"));
        return ep.bindInt(1, id).run();
      });
    });
    if (!s.ok()) {
      return;
    }
    epochs_.pop_front();
  }
}

void ActivityLog::noteClock() {
  const int64_t wall = nowUs();
  const MonotonicTime mono = time_.monotonicTime();
  if (last_wall_us_ != 0) {
    const int64_t expected =
        last_wall_us_ +
        std::chrono::duration_cast<std::chrono::microseconds>(mono - last_mono_).count();
    constexpr int64_t kTolerance = 100000;  // NTP slews, scheduling: not a step
    if (wall < expected - kTolerance) {
      const int64_t step = expected - wall;
      std::unique_lock<std::mutex> lock(mutex_);
      if (busy_ || broken_) {
        return;  // the next call sees the same step (the reference does not move)
      }
      Status s = writeExclusive(lock, [&]() -> Status {
        HALO_ASSIGN_OR_RETURN(Statement st,
                              db_.prepare("UPDATE al_epochs SET start_us = start_us - ?"));
        return st.bindInt(1, step).run();
      });
      if (!s.ok()) {
        return;
      }
      for (auto& e : epochs_) {
        e.start_us -= step;
      }
    }
  }
  last_wall_us_ = wall;
  last_mono_ = mono;
  // An old epoch gives way even when nothing new is activated (born objects need nothing).
  std::unique_lock<std::mutex> lock(mutex_);
  const int64_t age_us =
      std::chrono::duration_cast<std::chrono::microseconds>(options_.epoch_age).count();
  if (!busy_ && !broken_ && epochs_.size() == 1 && wall - epochs_.back().start_us >= age_us) {
    const uint64_t id = epochs_.back().id + 1;
    Status s = writeExclusive(lock, [&]() -> Status {
      HALO_ASSIGN_OR_RETURN(Statement e,
                            db_.prepare("INSERT INTO al_epochs(id, start_us) VALUES(?, ?)"));
      return e.bindInt(1, static_cast<int64_t>(id)).bindInt(2, wall).run();
    });
    if (s.ok()) {
      Epoch e;
      e.id = id;
      e.start_us = wall;
      epochs_.push_back(std::move(e));
    }
  }
}

Status ActivityLog::writeExclusive(std::unique_lock<std::mutex>& lock,
                                   const std::function<Status()>& body) {
  busy_ = true;
  lock.unlock();
  Status s = body();
  lock.lock();
  busy_ = false;
  cv_.notify_all();
  if (!s.ok()) {
    markBroken(s);
  }
  return s;
}

uint64_t ActivityLog::currentEpoch() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return epochs_.empty() ? 0 : epochs_.back().id;
}

void ActivityLog::markBroken(const Status& s) {
  if (!broken_ && !options_.broken_marker.empty()) {
    // Small and once: under the lock, so that no admission goes on before it is on disk.
    createDurably(options_.broken_marker);
  }
  broken_ = true;
  error_ = s;
}

bool ActivityLog::broken() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return broken_;
}

size_t ActivityLog::activeEntries() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t n = 0;
  for (const auto& e : epochs_) {
    n += e.keys.size();
  }
  return n;
}

namespace {

// When the object was born, in microseconds; its last status change when the file system keeps
// no birth time (later, so it only makes more objects count as born).
std::optional<int64_t> birthUs(int dir_fd, const char* name) {
  struct statx stx {};
  if (::statx(dir_fd, name, AT_SYMLINK_NOFOLLOW, STATX_BTIME | STATX_CTIME, &stx) != 0) {
    return std::nullopt;
  }
  const statx_timestamp& t = (stx.stx_mask & STATX_BTIME) ? stx.stx_btime : stx.stx_ctime;
  return int64_t{t.tv_sec} * 1000000 + t.tv_nsec / 1000;
}

}  // namespace

void recoverActivity(const ActivityLog::Recovered& recovered, const std::vector<int>& roots,
                     const std::vector<PathFilter>& filters, int64_t now_us, Millis grace,
                     ChangeLog* log) {
  // A clock that went back since the last commit: birth times say nothing, every entry of an
  // active directory counts.
  const int64_t born_after =
      now_us < recovered.last_commit_us
          ? std::numeric_limits<int64_t>::min()
          : recovered.oldest_start_us -
                std::chrono::duration_cast<std::chrono::microseconds>(grace).count();
  for (const auto& k : recovered.keys) {
    if (k.root >= roots.size()) {
      continue;
    }
    const PathFilter& replicated = k.root < filters.size() ? filters[k.root] : PathFilter();
    switch (k.kind) {
      case ActivityLog::Kind::Zone:
        // Written, or about to be: compared, so that only what really differs is copied.
        log->addCheck(k.root, k.path, k.zone * recovered.zone_size, recovered.zone_size);
        break;
      case ActivityLog::Kind::Meta:
        log->addMeta(k.root, k.path);
        break;
      case ActivityLog::Kind::Tail:
        log->addMeta(k.root, k.path);
        log->addCheck(k.root, k.path, k.zone * recovered.zone_size,
                      ChangeLog::kEnd - std::min(ChangeLog::kEnd, k.zone * recovered.zone_size));
        break;
      case ActivityLog::Kind::Moved:
        log->addUncertain(k.root, k.path);
        break;
      case ActivityLog::Kind::Linked:
        log->markIncomplete();
        break;
      case ActivityLog::Kind::Dir: {
        log->addDir(k.root, k.path);
        const int fd = ::openat(roots[k.root], k.path.empty() ? "." : k.path.c_str(),
                                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
        if (d == nullptr) {
          if (fd >= 0) {
            ::close(fd);
          }
          break;  // gone: its parent's entry (or the peer's listing) says so
        }
        while (dirent* e = ::readdir(d)) {
          const std::string name = e->d_name;
          if (name == "." || name == "..") {
            continue;
          }
          const std::string rel = k.path.empty() ? name : k.path + "/" + name;
          if (replicated && !replicated(rel, e->d_type == DT_DIR)) {
            continue;
          }
          auto born = birthUs(::dirfd(d), name.c_str());
          if (!born || *born >= born_after) {
            log->addUncertain(k.root, rel);  // born while the directory was active
          }
        }
        ::closedir(d);
        break;
      }
    }
  }
}

}  // namespace halo::rfs
