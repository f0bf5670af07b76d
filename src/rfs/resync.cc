#include "rfs/resync.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>

#include "base/strings.h"
#include "base/thread.h"
#include "rfs/digest.h"
#include "rfs/op_stat.h"
#include "rfs/resync_util.h"

namespace halo::rfs {

using applier_internal::openBeneath;
using applier_internal::UniqueFd;

using namespace resync_internal;  // NOLINT: the Resyncer's own helpers

std::string ResyncProgress::describe() const {
  char buf[256];
  std::string eta =
      eta_seconds < 0 ? "?" : std::to_string(static_cast<int64_t>(eta_seconds)) + " s";
  std::snprintf(buf, sizeof buf, "%" PRIu64 "/%" PRIu64 " files, %s/%s, %s/s, ETA %s", files_done,
                files_total, humanBytes(static_cast<double>(bytes_done)).c_str(),
                humanBytes(static_cast<double>(bytes_total)).c_str(), humanBytes(rate).c_str(),
                eta.c_str());
  return buf;
}

std::string ResyncProgress::summary() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%s, %" PRIu64 " files, %" PRIu64 " other entries, %" PRIu64
                " bytes copied, %" PRIu64 " bytes hashed, %.1f s",
                mode == "changes" ? "changes only" : "every file compared", files_done, entries,
                bytes_copied, bytes_hashed, seconds);
  return buf;
}

Resyncer::Resyncer(std::vector<ResyncRoot> roots, Hub& hub, uint64_t session, ResyncOptions options,
                   TimeSource& time, Events events)
    : roots_(std::move(roots)),
      hub_(hub),
      session_(session),
      options_(options),
      time_(time),
      events_(std::move(events)) {
  hints_.resize(roots_.size());
  redo_.resize(roots_.size());
  redo_active_.resize(roots_.size());
  plan_pending_.resize(roots_.size());
  whole_.resize(roots_.size());
}

Resyncer::~Resyncer() {
  hub_.clearObserver(session_);
  stop_ = true;
  work_cv_.notify_all();
  idle_cv_.notify_all();
  for (auto& t : threads_) {
    t.join();
  }
}

void Resyncer::setHint(uint16_t root, const Manifest& hint) {
  if (root >= hints_.size() || started_) {
    return;  // after the start the workers read the hints: a late one is ignored
  }
  for (const auto& e : hint.entries) {
    hints_[root][e.path] = {e.type_and_mode & S_IFMT, e.size};
  }
}

bool Resyncer::hintedMissing(uint16_t root, const std::string& path) const {
  if (options_.whole_files) {
    return true;
  }
  if (fast_) {
    // Below a fresh path only the primary made: the secondary cannot hold it.
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::string p = path;;) {
      if (whole_[root].count(p) != 0) {
        return true;
      }
      if (p.empty()) {
        return false;
      }
      const auto slash = p.rfind('/');
      p = slash == std::string::npos ? std::string() : p.substr(0, slash);
    }
  }
  if (no_hints_) {
    return false;
  }
  const auto& h = hints_[root];
  auto it = h.find(path);
  return it == h.end() || it->second.type != S_IFREG || it->second.size == 0;
}

void Resyncer::start() {
  if (started_) {
    return;
  }
  started_ = true;
  start_time_ = time_.monotonicTime();
  last_report_ = start_time_;
  throttle_start_ = start_time_;
  hub_.setObserver(session_, [this](const Op& op) { observe(op); });
  for (unsigned i = 0; i < std::max(1u, options_.threads); ++i) {
    threads_.emplace_back(namedThread("rfs-rei-copy", [this] { worker(); }));
  }
  threads_.emplace_back(namedThread("rfs-rei", [this] { run(); }));
}

// Whether the walk finished describing `path` (under mutex_): its directory was listed and, for
// a file, its content is done. A directory counts as finished only once the walk is over: its
// subtree may still be in progress.
bool Resyncer::describedLocked(uint16_t root, const std::string& path, bool dir) const {
  if (fast_) {
    // What the plan does not name was the same on both nodes; what it names is described once
    // its item is done (and, for a directory, once nothing below it is pending).
    if (pendingAtOrAboveLocked(root, path) || (dir && pendingBelowLocked(root, path))) {
      return false;
    }
    return pending_files_.count({root, path}) == 0;
  }
  // Under a path that a redo round has still to walk, nothing is described.
  for (std::string p = path;;) {
    if (redo_[root].count(p) != 0 || redo_active_[root].count(p) != 0) {
      return false;
    }
    const auto slash = p.rfind('/');
    if (slash == std::string::npos) {
      break;
    }
    p.resize(slash);
  }
  if (dir) {
    return walk_over_;
  }
  const auto slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
  return walked_dirs_.count({root, parent}) != 0 && pending_files_.count({root, path}) == 0;
}

void Resyncer::observe(const Op& op) {
  if (op.type != OpType::Rename && op.type != OpType::Link) {
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (op.root >= redo_.size()) {
    return;
  }
  // A rename of what the secondary already holds right moves it right there too; what the walk
  // has not described yet may land where it has passed (the interception puts the source's
  // file type in Rename's mode).
  const bool dir = op.type == OpType::Rename && S_ISDIR(op.mode);
  if (!describedLocked(op.root, op.path, dir)) {
    redo_[op.root].insert(op.path2);
  }
  if (op.type == OpType::Rename && (op.flags & RENAME_EXCHANGE)) {
    redo_[op.root].insert(op.path);
  }
}

ResyncProgress Resyncer::progress() const {
  ResyncProgress p;
  p.mode = fast_ ? "changes" : "full";
  {
    std::lock_guard<std::mutex> lock(mutex_);
    p.phase = phase_;
  }
  p.files_total = files_total_;
  p.bytes_total = bytes_total_;
  p.files_done = files_done_;
  p.bytes_done = bytes_done_;
  p.bytes_copied = bytes_copied_;
  p.bytes_hashed = bytes_hashed_;
  p.entries = entries_;
  const MonotonicTime until = ended_ ? end_time_ : time_.monotonicTime();
  p.seconds = started_ ? std::chrono::duration<double>(until - start_time_).count() : 0;
  p.rate = p.seconds > 0 ? static_cast<double>(p.bytes_done) / p.seconds : 0;
  if (p.rate > 0 && p.bytes_total >= p.bytes_done) {
    p.eta_seconds = static_cast<double>(p.bytes_total - p.bytes_done) / p.rate;
  }
  return p;
}

void Resyncer::fail(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.empty()) {
      failure_ = why;
    }
  }
  stop_ = true;
  work_cv_.notify_all();
  idle_cv_.notify_all();
}

void Resyncer::submitXattrs(uint16_t root, const std::string& path, const XattrList& xattrs) {
  if (xattrs.empty()) {
    return;  // the Sync* record said so (kSyncNoXattrs)
  }
  // As many as fit in SyncXattrs (which removes the others), the rest one by one.
  XattrList first;
  size_t bytes = 0;
  size_t i = 0;
  for (; i < xattrs.size(); ++i) {
    const size_t cost = xattrs[i].first.size() + xattrs[i].second.size() + 8;
    if (bytes + cost > kListBytesPerRecord) {
      break;
    }
    bytes += cost;
    first.push_back(xattrs[i]);
  }
  Op op;
  op.type = OpType::SyncXattrs;
  op.path = path;
  encodeXattrs(first, &op.data);
  submit(root, std::move(op));
  for (; i < xattrs.size(); ++i) {
    Op x;
    x.type = OpType::SetXattr;
    x.path = path;
    x.name = xattrs[i].first;
    x.data = xattrs[i].second;
    submit(root, std::move(x));
  }
}

uint64_t Resyncer::submit(uint16_t root, Op op) {
  op.root = root;
  uint64_t seq = hub_.submitTo(session_, std::move(op));
  if (seq == 0) {
    fail("the replication session ended");
  }
  return seq;
}

void Resyncer::enqueue(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  work_cv_.notify_one();
}

void Resyncer::worker() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (stop_) {
        return;
      }
      task = std::move(tasks_.front());
      tasks_.pop_front();
      ++running_;
    }
    task();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --running_;
    }
    idle_cv_.notify_all();
  }
}

bool Resyncer::waitIdle() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_ && !(tasks_.empty() && running_ == 0 && files_.empty() && dir_answers_.empty())) {
    idle_cv_.wait_for(lock, std::chrono::milliseconds(500));
    lock.unlock();
    maybeReport();
    lock.lock();
  }
  return !stop_;
}

void Resyncer::maybeReport() {
  const auto now = time_.monotonicTime();
  if (now - last_report_ < options_.progress_every) {
    return;
  }
  last_report_ = now;
  ResyncProgress p = progress();
  Op op;
  op.type = OpType::ResyncProgress;
  op.data = p.describe().substr(0, kMaxProgress);
  (void)hub_.submitTo(session_, op);
  if (events_.progress) {
    events_.progress(p);
  }
}

void Resyncer::throttle(uint64_t bytes) {
  if (options_.bandwidth_kib_per_s == 0) {
    return;
  }
  double wait = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    throttled_bytes_ += bytes;
    const double allowed = static_cast<double>(options_.bandwidth_kib_per_s) * 1024.0;
    const double due = static_cast<double>(throttled_bytes_) / allowed;
    const double elapsed =
        std::chrono::duration<double>(time_.monotonicTime() - throttle_start_).count();
    wait = due - elapsed;
  }
  // The excess slept off, a slice at a time so that a stop ends it soon.
  while (wait > 0 && !stop_) {
    const double slice = std::min(wait, 0.05);
    std::this_thread::sleep_for(std::chrono::duration<double>(slice));
    wait -= slice;
  }
}

Status Resyncer::walkAll() {
  HALO_RETURN_IF_ERROR(count());
  for (uint16_t r = 0; r < roots_.size() && !stop_; ++r) {
    HALO_RETURN_IF_ERROR(walkRoot(r, ""));
  }
  return okStatus();
}

void Resyncer::run() {
  std::string detail;
  bool ok = false;
  Op begin;
  begin.type = OpType::ResyncBegin;
  begin.flags = fast_ ? 0 : kResyncFull;
  Status s =
      submit(0, std::move(begin)) == 0 ? unavailable("the replication session ended") : okStatus();
  if (s.ok()) {
    s = fast_ ? runPlan() : walkAll();
  }
  if (s.ok() && fast_ && waitIdle()) {
    s = planMissing();
  }
  if (s.ok() && waitIdle()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      phase_ = "renamed";
    }
    walk_over_ = true;
    // Renamed or linked into places already walked: walk them again, until a round adds none.
    for (int round = 0; s.ok() && !stop_; ++round) {
      std::vector<std::set<std::string>> redo(roots_.size());
      {
        std::lock_guard<std::mutex> lock(mutex_);
        redo.swap(redo_);
        redo_.resize(roots_.size());
        redo_active_ = redo;
      }
      bool any = false;
      for (uint16_t r = 0; r < redo.size() && s.ok(); ++r) {
        for (const auto& path : redo[r]) {
          any = true;
          s = walkRoot(r, path);
          if (!s.ok()) {
            break;
          }
        }
      }
      if (!waitIdle()) {
        break;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& a : redo_active_) {
          a.clear();
        }
      }
      if (!any) {
        break;
      }
      if (round >= options_.max_redo_rounds) {
        s = failedPrecondition(
            "files keep being renamed during the reintegration; it will be "
            "retried");
        break;
      }
      if (!waitIdle()) {
        break;
      }
    }
  }
  if (s.ok() && !stop_) {
    s = linksAndTimes();
  }
  if (s.ok() && waitIdle()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      phase_ = "finishing";
    }
    hub_.clearObserver(session_);
    const uint64_t marker = hub_.finishResync(session_);
    // The marker is acknowledged once the secondary applied everything before it.
    if (marker == 0 || !hub_.waitSessionAcked(session_, marker)) {
      detail = "the replication session ended";
    } else {
      ok = true;
      end_time_ = time_.monotonicTime();
      ended_ = true;
      detail = progress().summary();
      std::lock_guard<std::mutex> lock(mutex_);
      phase_ = "done";
    }
  } else {
    std::lock_guard<std::mutex> lock(mutex_);
    detail = !s.ok() ? s.message() : failure_.empty() ? "stopped" : failure_;
  }
  stop_ = true;  // workers end
  work_cv_.notify_all();
  if (events_.done) {
    events_.done(ok, detail);
  }
}

Status Resyncer::count() {
  for (uint16_t r = 0; r < roots_.size(); ++r) {
    WalkOptions o;
    o.block_digests = false;
    o.include = roots_[r].replicated;
    const std::string root = "/proc/self/fd/" + std::to_string(roots_[r].fs->rootFd());
    auto walk = walkTree(root, o);
    if (!walk.ok()) {
      return walk.status().withPrefix("counting the files to reintegrate");
    }
    for (const auto& e : walk->manifest.entries) {
      if (S_ISREG(e.type_and_mode)) {
        ++files_total_;
        bytes_total_ += e.size;
      }
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  phase_ = "walking";
  return okStatus();
}

Status Resyncer::walkRoot(uint16_t root, const std::string& top) {
  // Depth first, without recursion: trees can be deep.
  std::vector<std::string> stack = {top};
  if (!top.empty()) {
    // A single redo path: whatever it is now.
    struct stat st {};
    bool present = false;
    bool is_dir = false;
    roots_[root].fs->ordered([&] {
      present = ::fstatat(roots_[root].fs->rootFd(), top.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
      is_dir = present && S_ISDIR(st.st_mode);
    });
    if (!present || (roots_[root].replicated && !roots_[root].replicated(top, is_dir))) {
      return okStatus();  // gone again, or not replicated: the live stream said all
    }
    if (!is_dir) {
      // Walk its parent again: that describes it, whatever its type, and lists the parent.
      const auto slash = top.rfind('/');
      const std::string parent = slash == std::string::npos ? "" : top.substr(0, slash);
      std::vector<std::string> ignored;
      if (S_ISREG(st.st_mode)) {
        syncFile(root, top, st.st_nlink > 1);
        return okStatus();
      }
      return walkDir(root, parent, &ignored, top);
    }
  }
  while (!stack.empty() && !stop_) {
    std::string dir = std::move(stack.back());
    stack.pop_back();
    std::vector<std::string> subdirs;
    HALO_RETURN_IF_ERROR(walkDir(root, dir, &subdirs));
    for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it) {
      stack.push_back(std::move(*it));
    }
    maybeReport();
  }
  return okStatus();
}

Status Resyncer::walkDir(uint16_t root, const std::string& path, std::vector<std::string>* subdirs,
                         const std::string& only, bool list_only) {
  FuseFs& fs = *roots_[root].fs;
  const auto& replicated = roots_[root].replicated;
  std::vector<std::pair<std::string, bool>> files;  // regular files: (path, hard linked)
  Status status;
  hub_.waitRoom(session_);
  fs.ordered([&] {
    const int root_fd = fs.rootFd();
    auto fd = openBeneath(root_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd.ok()) {
      struct stat gone {};
      const bool vanished =
          ::fstatat(root_fd, path.empty() ? "." : path.c_str(), &gone, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISDIR(gone.st_mode);
      if (!vanished) {
        // There but unreadable (no descriptor left, no memory): never skip a subtree.
        status = fd.status();
      }
      return;  // renamed or removed meanwhile: the live stream carried it
    }
    struct stat dst {};
    if (::fstat(fd->get(), &dst) != 0) {
      return;
    }
    int dup = ::dup(fd->get());
    DIR* d = dup < 0 ? nullptr : ::fdopendir(dup);
    if (d == nullptr) {
      if (dup >= 0) {
        ::close(dup);
      }
      status = errnoStatus("opendir " + path, errno);
      return;
    }
    std::vector<DirEntry> entries;
    std::vector<std::pair<std::string, struct stat>> others;  // symlinks and special files
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") {
        continue;
      }
      const std::string rel = childOf(path, name);
      struct stat st {};
      if (::fstatat(fd->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        continue;
      }
      if (replicated && !replicated(rel, S_ISDIR(st.st_mode))) {
        continue;
      }
      if (list_only || (!only.empty() && rel != only)) {
        // A pass for one entry still lists the others: the directory keeps them all.
        entries.push_back({name, st.st_mode & S_IFMT});
        continue;
      }
      if (st.st_dev != dst.st_dev) {
        continue;  // a mount point below the replicated directory is not ours
      }
      entries.push_back({name, st.st_mode & S_IFMT});
      if (S_ISDIR(st.st_mode)) {
        subdirs->push_back(rel);
      } else if (S_ISREG(st.st_mode)) {
        files.emplace_back(rel, st.st_nlink > 1);
      } else {
        others.emplace_back(rel, st);
      }
    }
    ::closedir(d);
    const XattrList dir_xattrs = readXattrs(root_fd, path);
    // Split by bytes: a directory of long names would not fit one record.
    size_t at = 0;
    do {
      size_t end = at;
      size_t bytes = 0;
      while (end < entries.size() && bytes + entries[end].name.size() + 8 < kListBytesPerRecord) {
        bytes += entries[end].name.size() + 8;
        ++end;
      }
      Op op;
      op.type = OpType::SyncDir;
      op.path = path;
      op.mode = dst.st_mode;
      op.uid = dst.st_uid;
      op.gid = dst.st_gid;
      std::vector<DirEntry> part(entries.begin() + static_cast<std::ptrdiff_t>(at),
                                 entries.begin() + static_cast<std::ptrdiff_t>(end));
      encodeEntries(part, &op.data);
      const bool last = end >= entries.size();
      op.flags = (last ? 0 : kSyncListMore) | (dir_xattrs.empty() ? kSyncNoXattrs : 0) |
                 (last && list_only ? kSyncAnswerMissing : 0);
      const uint64_t seq = submit(root, std::move(op));
      if (seq == 0) {
        return;
      }
      if (last && list_only) {
        std::lock_guard<std::mutex> lock(mutex_);
        dir_answers_[seq] = {root, path};
      }
      at = end;
    } while (at < entries.size());
    submitXattrs(root, path, dir_xattrs);
    for (const auto& [rel, st] : others) {
      Op op;
      op.path = rel;
      op.uid = st.st_uid;
      op.gid = st.st_gid;
      op.atime_sec = st.st_atim.tv_sec;
      op.atime_nsec = st.st_atim.tv_nsec;
      op.mtime_sec = st.st_mtim.tv_sec;
      op.mtime_nsec = st.st_mtim.tv_nsec;
      if (S_ISLNK(st.st_mode)) {
        std::string target(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
        ssize_t n = ::readlinkat(root_fd, rel.c_str(), target.data(), target.size());
        if (n <= 0 || static_cast<size_t>(n) >= target.size()) {
          continue;
        }
        target.resize(static_cast<size_t>(n));
        op.type = OpType::SyncSymlink;
        op.path2 = std::move(target);
      } else {
        op.type = OpType::SyncNode;
        op.mode = st.st_mode;
        op.rdev = st.st_rdev;
      }
      const XattrList x = readXattrs(root_fd, rel);
      op.flags = x.empty() ? kSyncNoXattrs : 0;
      submit(root, std::move(op));
      submitXattrs(root, rel, x);
      ++entries_;
    }
  });
  HALO_RETURN_IF_ERROR(status);
  ++entries_;
  std::vector<NeedRanges> early;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    dirs_.emplace_back(root, path);
    walked_dirs_.insert({root, path});
    early = takeEarlyLocked();  // a listed directory's answer may have come first
  }
  for (const auto& n : early) {
    onNeed(n);
  }
  for (auto& [rel, linked] : files) {
    enqueueFile(root, rel, linked);
  }
  return okStatus();
}

void Resyncer::enqueueFile(uint16_t root, const std::string& path, bool hard_linked) {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    // The walk stays at most this far ahead of the copies: its queue holds paths.
    idle_cv_.wait(lock, [this] { return stop_ || tasks_.size() < kMaxQueuedFiles; });
    pending_files_.insert({root, path});
    tasks_.push_back([this, root, path, hard_linked] { syncFile(root, path, hard_linked); });
  }
  work_cv_.notify_one();
}

bool Resyncer::linkToFirst(uint16_t root, const std::string& path, const struct stat& st) {
  std::string first;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto key = std::make_pair(root, std::make_pair(st.st_dev, st.st_ino));
    auto it = first_names_.find(key);
    if (it == first_names_.end()) {
      first_names_[key] = path;
      return false;
    }
    first = it->second;
    links_.push_back({root, first, path, st.st_dev, st.st_ino});
  }
  Op op;
  op.type = OpType::SyncLink;
  op.path = first;
  op.path2 = path;
  submit(root, std::move(op));
  return true;
}

}  // namespace halo::rfs
