// The Resyncer's fast reintegration (resync.h): only what the change logs of both nodes record
// since their common sync point (change_log.h).

#include <fcntl.h>
#include <sys/stat.h>

#include "rfs/digest.h"
#include "rfs/resync.h"
#include "rfs/resync_util.h"

namespace halo::rfs {

using namespace resync_internal;  // NOLINT: the Resyncer's own helpers

namespace {

std::string parentOf(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

}  // namespace

void Resyncer::setPlan(ChangeLog plan, ChangeLog whole) {
  if (started_) {
    return;
  }
  fast_ = true;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [root, r] : whole.roots()) {
    if (root < whole_.size()) {
      whole_[root].insert(r.fresh.begin(), r.fresh.end());
    }
  }
  for (const auto& [root, path] : plan.keys()) {
    if (root < plan_pending_.size()) {
      plan_pending_[root].insert(path);
    }
  }
  plan_ = std::move(plan);
}

bool Resyncer::pendingAtOrAboveLocked(uint16_t root, const std::string& path) const {
  const auto& pending = plan_pending_[root];
  for (std::string p = path;; p = parentOf(p)) {
    if (pending.count(p) != 0 || redo_[root].count(p) != 0 || redo_active_[root].count(p) != 0) {
      return true;
    }
    if (p.empty()) {
      return false;
    }
  }
}

bool Resyncer::pendingBelowLocked(uint16_t root, const std::string& path) const {
  const std::string prefix = path.empty() ? "" : path + "/";
  for (const auto* set : {&plan_pending_[root], &redo_[root], &redo_active_[root]}) {
    auto it = set->lower_bound(prefix);
    if (it != set->end() && it->compare(0, prefix.size(), prefix) == 0 && *it != path) {
      return true;
    }
  }
  return false;
}

void Resyncer::planItemDone(uint16_t root, const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  plan_pending_[root].erase(path);
}

void Resyncer::countPlan() {
  for (const auto& [root, r] : plan_.roots()) {
    if (root >= roots_.size()) {
      continue;
    }
    const int root_fd = roots_[root].fs->rootFd();
    for (const auto& [path, pc] : r.paths) {
      if (!pc.ranges.empty() || !pc.check.empty()) {
        ++files_total_;
      }
      for (const auto& [start, end] : pc.ranges) {
        bytes_total_ += end - start;
      }
    }
    std::vector<std::string> entire(r.fresh.begin(), r.fresh.end());
    entire.insert(entire.end(), r.uncertain.begin(), r.uncertain.end());
    for (const auto& f : entire) {
      struct stat st {};
      if (::fstatat(root_fd, f.empty() ? "." : f.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISREG(st.st_mode)) {
        ++files_total_;
        bytes_total_ += static_cast<uint64_t>(st.st_size);
      }
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  phase_ = "walking";
}

Status Resyncer::runPlan() {
  countPlan();
  // In path order, parents before children: a fresh directory's walk covers what is below it.
  for (const auto& [root, path] : plan_.keys()) {
    if (stop_) {
      break;
    }
    if (root >= roots_.size()) {
      return failedPrecondition("the change log names replicated directory " +
                                std::to_string(root) + ", this module has " +
                                std::to_string(roots_.size()));
    }
    const ChangeLog::RootChanges& r = plan_.roots().at(root);
    FuseFs& fs = *roots_[root].fs;
    if (r.fresh.count(path) != 0 || r.uncertain.count(path) != 0) {
      // Described entirely: sent whole when only this node made it (whole_), else compared.
      HALO_RETURN_IF_ERROR(walkRoot(root, path));
      planItemDone(root, path);
      continue;
    }
    struct stat st {};
    bool present = false;
    fs.ordered([&] {
      present =
          ::fstatat(fs.rootFd(), path.empty() ? "." : path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    });
    if (!present) {
      planItemDone(root, path);  // gone since: the live stream removed it on the secondary
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      std::vector<std::string> ignored;
      HALO_RETURN_IF_ERROR(walkDir(root, path, &ignored, "", true));
      planItemDone(root, path);
    } else if (S_ISREG(st.st_mode)) {
      auto pc = r.paths.find(path);
      std::map<uint64_t, uint64_t> ranges;
      std::map<uint64_t, uint64_t> check;
      if (pc != r.paths.end()) {
        ranges = pc->second.ranges;
        check = pc->second.check;
      }
      {
        std::unique_lock<std::mutex> lock(mutex_);
        idle_cv_.wait(lock, [this] { return stop_ || tasks_.size() < kMaxQueuedFiles; });
        pending_files_.insert({root, path});
        tasks_.push_back(
            [this, root, path, ranges, check] { syncChanged(root, path, ranges, check); });
      }
      work_cv_.notify_one();
    } else {
      // A symlink or special file: described with its parent's list.
      std::vector<std::string> ignored;
      HALO_RETURN_IF_ERROR(walkDir(root, parentOf(path), &ignored, path));
      planItemDone(root, path);
    }
    maybeReport();
  }
  return okStatus();
}

Status Resyncer::planMissing() {
  // Answers may name entries whose walk lists more directories: until a round finds none.
  for (int round = 0; !stop_; ++round) {
    std::vector<std::pair<uint16_t, std::string>> missing;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      missing.swap(missing_);
      for (const auto& [root, path] : missing) {
        whole_[root].insert(path);  // the secondary lacks it: nothing to compare
      }
    }
    if (missing.empty()) {
      return okStatus();
    }
    for (const auto& [root, path] : missing) {
      HALO_RETURN_IF_ERROR(walkRoot(root, path));
    }
    if (!waitIdle()) {
      return okStatus();
    }
  }
  return okStatus();
}

namespace {

// The parts of `check` not in `copied`, clipped to `size`.
std::vector<std::pair<uint64_t, uint64_t>> toCompare(const std::map<uint64_t, uint64_t>& check,
                                                     const std::map<uint64_t, uint64_t>& copied,
                                                     uint64_t size) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& [first, last] : check) {
    uint64_t start = first;
    const uint64_t end = std::min(last, size);
    auto it = copied.upper_bound(start);
    if (it != copied.begin() && std::prev(it)->second > start) {
      start = std::prev(it)->second;  // inside a copied range: from its end
    }
    while (start < end) {
      const uint64_t stop = it == copied.end() ? end : std::min(end, it->first);
      if (stop > start) {
        out.emplace_back(start, stop);
      }
      if (it == copied.end()) {
        break;
      }
      start = std::max(start, it->second);
      ++it;
    }
  }
  return out;
}

}  // namespace

void Resyncer::syncChanged(uint16_t root, const std::string& path,
                           const std::map<uint64_t, uint64_t>& ranges,
                           const std::map<uint64_t, uint64_t>& check) {
  if (stop_) {
    return;
  }
  FuseFs& fs = *roots_[root].fs;
  const int root_fd = fs.rootFd();
  constexpr uint64_t kBlock = ChangeLog::kBlock;
  // What may differ is hashed first, outside the lock: kept only for the same inode (a block
  // written meanwhile can only look different, never hide a difference: resync.h).
  struct Compared {
    uint64_t offset;
    std::vector<BlockDigest> digests;
  };
  std::vector<Compared> compared;
  struct stat hashed {};
  if (!check.empty()) {
    auto fd = openForReading(root_fd, path);
    if (fd.ok() && ::fstat(fd->get(), &hashed) == 0 && S_ISREG(hashed.st_mode)) {
      std::string buf(kBlock, '\0');
      const BlockDigest zero = blockDigest(std::string(kBlock, '\0').data(), kBlock);
      for (auto [start, end] : toCompare(check, ranges, static_cast<uint64_t>(hashed.st_size))) {
        Compared c{start, {}};
        for (uint64_t at = start; at < end && !stop_; at += kBlock) {
          if (isHole(fd->get(), at, kBlock, hashed)) {
            c.digests.push_back(zero);
            continue;
          }
          const ssize_t n = readFully(fd->get(), buf.data(), buf.size(), at);
          if (n < 0) {
            break;
          }
          c.digests.push_back(blockDigest(buf.data(), static_cast<size_t>(n)));
          bytes_hashed_ += static_cast<uint64_t>(n);
        }
        compared.push_back(std::move(c));
      }
    }
  }
  bool registered = false;
  uint64_t id = 0;
  bool linked = false;
  hub_.waitRoom(session_);
  fs.ordered([&] {
    struct stat st {};
    if (::fstatat(root_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      return;  // gone or replaced meanwhile: the live stream and the redo rounds cover it
    }
    if (st.st_nlink > 1) {
      linked = true;  // its other names' sharing is beyond a change log
      return;
    }
    const XattrList x = readXattrs(root_fd, path);
    std::vector<uint64_t> seqs;  // the records the secondary answers
    const uint64_t seq =
        submit(root, syncFileOp(path, st, kSyncRanges | (x.empty() ? kSyncNoXattrs : 0)));
    if (seq == 0) {
      return;
    }
    seqs.push_back(seq);
    submitXattrs(root, path, x);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    std::vector<std::pair<uint64_t, uint64_t>> copies;
    for (const auto& [start, end] : ranges) {
      copies.emplace_back(start, end - start);
    }
    const bool valid = st.st_dev == hashed.st_dev && st.st_ino == hashed.st_ino;
    if (!valid) {
      // Replaced since it was hashed: what may differ is copied.
      for (const auto& [start, end] : check) {
        if (start < size) {
          copies.emplace_back(start, std::min(end, size) - start);
        }
      }
      compared.clear();
    }
    for (const auto& c : compared) {
      for (size_t i = 0; i < c.digests.size(); i += kDigestsPerRecord) {
        Op v;
        v.type = OpType::VerifyBlocks;
        v.path = path;
        v.offset = c.offset + i * kBlock;
        v.length = kBlock;
        const size_t n = std::min(kDigestsPerRecord, c.digests.size() - i);
        v.data.assign(reinterpret_cast<const char*>(c.digests[i].data()), n * sizeof(BlockDigest));
        const uint64_t s = submit(root, std::move(v));
        if (s == 0) {
          return;
        }
        seqs.push_back(s);
      }
    }
    uint64_t changed = 0;
    for (const auto& [offset, length] : copies) {
      changed += offset < size ? std::min(offset + length, size) - offset : 0;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    id = registerFileLocked(root, path, size, changed, seqs, copies);
    registered = true;
  });
  work_cv_.notify_all();
  planItemDone(root, path);
  if (linked) {
    hub_.markChangesIncomplete();
    fail("a file with several hard links changed (" + path +
         "): only a full reintegration restores the links; it follows");
    return;
  }
  if (!registered) {
    files_done_ += 1;
    std::lock_guard<std::mutex> lock(mutex_);
    pending_files_.erase({root, path});
    return;
  }
  std::vector<NeedRanges> early;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    early = takeEarlyLocked();
  }
  for (const auto& n : early) {
    onNeed(n);
  }
  fileStep(id);
}

}  // namespace halo::rfs
