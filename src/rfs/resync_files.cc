// The Resyncer's work on files (resync.h): a file's description and digests, the secondary's
// answers, the copies, a file's end, and the hard links and directory times at the end.

#include <linux/falloc.h>

#include <cinttypes>

#include "rfs/op_stat.h"
#include "rfs/resync.h"
#include "rfs/resync_util.h"

namespace halo::rfs {

using namespace resync_internal;  // NOLINT: the Resyncer's own helpers

void Resyncer::syncFile(uint16_t root, const std::string& path, bool hard_linked) {
  if (stop_) {
    return;
  }
  FuseFs& fs = *roots_[root].fs;
  const int root_fd = fs.rootFd();
  // Hashing first, outside the lock: kept only if the inode saw no change meanwhile.
  const bool whole = hintedMissing(root, path);
  std::vector<BlockDigest> digests;
  struct stat hashed {};
  if (!whole) {
    auto fd = openForReading(root_fd, path);
    if (fd.ok() && ::fstat(fd->get(), &hashed) == 0 && S_ISREG(hashed.st_mode)) {
      std::string buf(options_.block_size, '\0');
      const std::string zeros(options_.block_size, '\0');
      const BlockDigest zero_digest = blockDigest(zeros.data(), zeros.size());
      for (uint64_t at = 0; at < static_cast<uint64_t>(hashed.st_size) && !stop_;
           at += options_.block_size) {
        if (at + options_.block_size <= static_cast<uint64_t>(hashed.st_size) &&
            isHole(fd->get(), at, options_.block_size, hashed)) {
          digests.push_back(zero_digest);  // a hole reads as zeroes: no need to read it
          continue;
        }
        ssize_t n = readFully(fd->get(), buf.data(), buf.size(), at);
        if (n < 0) {
          break;
        }
        digests.push_back(blockDigest(buf.data(), static_cast<size_t>(n)));
        bytes_hashed_ += static_cast<uint64_t>(n);
        if (static_cast<size_t>(n) < buf.size()) {
          break;
        }
      }
    }
  }
  bool skipped = true;
  uint64_t size = 0;
  uint64_t registered = 0;
  hub_.waitRoom(session_);
  fs.ordered([&] {
    struct stat st {};
    if (::fstatat(root_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      return;  // gone or replaced meanwhile: the live stream and the redo round cover it
    }
    // Another name of an inode already described: a link to it, its content comes with it.
    if (hard_linked && st.st_nlink > 1 && linkToFirst(root, path, st)) {
      return;
    }
    // Digests of blocks written since they were hashed can only make the secondary report a
    // difference (it compares after applying those writes), never hide one: they stay valid
    // for the same inode. Blocks the file grew by meanwhile are sent without comparing.
    const bool valid = !whole && st.st_dev == hashed.st_dev && st.st_ino == hashed.st_ino;
    const uint64_t blocks =
        (static_cast<uint64_t>(st.st_size) + options_.block_size - 1) / options_.block_size;
    if (valid && digests.size() > blocks) {
      digests.resize(blocks);
    }
    const uint64_t compared_end =
        std::min<uint64_t>(static_cast<uint64_t>(st.st_size), digests.size() * options_.block_size);
    const XattrList x = readXattrs(root_fd, path);
    Op op;
    op.type = OpType::SyncFile;
    op.path = path;
    op.mode = st.st_mode;
    op.uid = st.st_uid;
    op.gid = st.st_gid;
    op.length = static_cast<uint64_t>(st.st_size);
    op.flags = (valid ? 0 : kSyncWholeFile) | (hard_linked ? kSyncHardLinked : 0) |
               (x.empty() ? kSyncNoXattrs : 0);
    std::vector<uint64_t> seqs;  // the records the secondary answers
    uint64_t seq = submit(root, std::move(op));
    if (seq == 0) {
      return;
    }
    if (valid) {
      seqs.push_back(seq);  // a file sent whole is not answered: its copies are queued below
    }
    submitXattrs(root, path, x);
    for (size_t i = 0; valid && i < digests.size(); i += kDigestsPerRecord) {
      Op v;
      v.type = OpType::VerifyBlocks;
      v.path = path;
      v.offset = i * options_.block_size;
      v.length = options_.block_size;
      const size_t n = std::min(kDigestsPerRecord, digests.size() - i);
      v.data.assign(reinterpret_cast<const char*>(digests[i].data()), n * sizeof(BlockDigest));
      seq = submit(root, std::move(v));
      if (seq == 0) {
        return;
      }
      seqs.push_back(seq);
    }
    size = static_cast<uint64_t>(st.st_size);
    skipped = false;
    // Registered before the lock goes, so that no answer can come for an unknown record... and
    // answers that raced ahead are kept in early_ until then.
    std::vector<std::pair<uint64_t, uint64_t>> copies;
    if (!valid || compared_end < size) {
      const uint64_t start = valid ? compared_end : 0;
      copies.emplace_back(start, size - start);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    registered = registerFileLocked(root, path, size, seqs, copies);
  });
  work_cv_.notify_all();
  if (skipped) {
    files_done_ += 1;
    std::lock_guard<std::mutex> lock(mutex_);
    pending_files_.erase({root, path});
    return;
  }
  fileStep(registered);  // an empty file sent whole has nothing to wait for
  std::vector<NeedRanges> early;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    early = takeEarlyLocked();
  }
  for (const auto& n : early) {
    onNeed(n);
  }
}

uint64_t Resyncer::registerFileLocked(uint16_t root, const std::string& path, uint64_t size,
                                      const std::vector<uint64_t>& seqs,
                                      const std::vector<std::pair<uint64_t, uint64_t>>& copies) {
  const uint64_t id = next_file_++;
  PendingFile f;
  f.root = root;
  f.path = path;
  f.size = size;
  f.replies = static_cast<int>(seqs.size());
  for (auto [offset, length] : copies) {
    const uint64_t end = std::min(size, offset + length);
    for (uint64_t at = offset; at < end; at += kCopyChunk) {
      ++f.copies;
      const uint64_t n = std::min<uint64_t>(kCopyChunk, end - at);
      tasks_.push_back([this, id, at, n] { copyRange(id, at, n); });
    }
  }
  files_.emplace(id, std::move(f));
  for (uint64_t s : seqs) {
    by_seq_[s] = id;
  }
  return id;
}

std::vector<NeedRanges> Resyncer::takeEarlyLocked() {
  std::vector<NeedRanges> out;
  for (auto it = early_.begin(); it != early_.end();) {
    if (by_seq_.count(it->seq) != 0 || dir_answers_.count(it->seq) != 0) {
      out.push_back(std::move(*it));
      it = early_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

void Resyncer::onNeed(const NeedRanges& need) {
  uint64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto d = dir_answers_.find(need.seq); d != dir_answers_.end()) {
      // A listed directory's answer: the entries the secondary lacks, described entirely later.
      for (const auto& name : need.entries) {
        missing_.emplace_back(d->second.first, childOf(d->second.second, name));
      }
      dir_answers_.erase(d);
      idle_cv_.notify_all();
      return;
    }
    auto it = by_seq_.find(need.seq);
    if (it == by_seq_.end()) {
      early_.push_back(need);  // its file is being registered right now
      return;
    }
    id = it->second;
    by_seq_.erase(it);
    auto f = files_.find(id);
    if (f == files_.end()) {
      return;
    }
    // What the peer asks stops at the file's size (it asks whole blocks): nothing beyond.
    const uint64_t limit = f->second.size;
    for (auto [offset, length] : need.ranges) {
      if (offset >= limit) {
        continue;
      }
      length = std::min(length, limit - offset);
      for (uint64_t at = offset; at < offset + length; at += kCopyChunk) {
        ++f->second.copies;
        const uint64_t n = std::min<uint64_t>(kCopyChunk, offset + length - at);
        tasks_.push_back([this, id, at, n] { copyRange(id, at, n); });
      }
    }
  }
  work_cv_.notify_all();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto f = files_.find(id);
    if (f != files_.end()) {
      --f->second.replies;
    }
  }
  fileStep(id);
}

void Resyncer::copyRange(uint64_t file_id, uint64_t offset, uint64_t length) {
  uint16_t root = 0;
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto f = files_.find(file_id);
    if (f == files_.end()) {
      return;
    }
    root = f->second.root;
    path = f->second.path;
  }
  FuseFs& fs = *roots_[root].fs;
  const int root_fd = fs.rootFd();
  std::string data;
  data.resize(length);  // filled by the read (a hole is not read)
  ssize_t got = -1;
  bool hole = false;
  struct stat read_st {};
  throttle(length);
  const uint64_t before = hub_.lastSeq();
  // Kept open until the check below: an inode held open cannot be freed, so its number cannot
  // come back as another file's meanwhile.
  auto fd = openForReading(root_fd, path);
  if (fd.ok() && ::fstat(fd->get(), &read_st) == 0) {
    hole = isHole(fd->get(), offset, length, read_st);
    if (!hole) {
      got = readFully(fd->get(), data.data(), data.size(), offset);
    }
  }
  hub_.waitRoom(session_);
  Status error;
  fs.ordered([&] {
    struct stat st {};
    if (::fstatat(root_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      return;  // gone: the live stream removed it on the secondary too
    }
    if (!fd.ok() || got < 0 || read_st.st_nlink == 0 || st.st_ino != read_st.st_ino ||
        st.st_dev != read_st.st_dev || fs.lastDataChange(st.st_dev, st.st_ino) > before) {
      // Changed while being read: read it again, now that nothing can change it.
      auto again = openForReading(root_fd, path);
      if (!again.ok()) {
        error = again.status();
        return;
      }
      hole = isHole(again->get(), offset, length, st);
      got = hole ? 0 : readFully(again->get(), data.data(), data.size(), offset);
      if (got < 0) {
        error = errnoStatus("reading " + path, errno);
        return;
      }
    }
    Op op;
    op.path = path;
    op.offset = offset;
    if (hole) {
      // A hole of a sparse file: zeroes on the secondary too, without sending them.
      op.type = OpType::Fallocate;
      op.flags = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
      op.length = length;
      submit(root, std::move(op));
      return;
    }
    if (got == 0) {
      return;  // beyond the end now: a live truncate said it
    }
    op.type = OpType::Write;
    data.resize(static_cast<size_t>(got));
    op.data = std::move(data);
    if (submit(root, std::move(op)) != 0) {
      bytes_copied_ += static_cast<uint64_t>(got);
    }
  });
  if (!error.ok()) {
    fail("copying " + path + ": " + error.message());
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto f = files_.find(file_id);
    if (f != files_.end()) {
      --f->second.copies;
    }
  }
  fileStep(file_id);
}

void Resyncer::fileStep(uint64_t file_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto f = files_.find(file_id);
    if (f == files_.end() || f->second.replies > 0 || f->second.copies > 0) {
      return;
    }
  }
  finishFile(file_id);
}

void Resyncer::finishFile(uint64_t file_id) {
  PendingFile f;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = files_.find(file_id);
    if (it == files_.end()) {
      return;
    }
    f = std::move(it->second);
    files_.erase(it);
  }
  FuseFs& fs = *roots_[f.root].fs;
  hub_.waitRoom(session_);
  fs.ordered([&] {
    struct stat st {};
    if (::fstatat(fs.rootFd(), f.path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode)) {
      // The copies gave the secondary's file new times.
      submit(f.root, timesOf(f.path, st));
    }
  });
  files_done_ += 1;
  bytes_done_ += f.size;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_files_.erase({f.root, f.path});
  }
  idle_cv_.notify_all();
}

Status Resyncer::linksAndTimes() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    phase_ = "links";
  }
  // The links made during the walk got their content through the first name. If that name went
  // away meanwhile (unlinked, so no redo), the content is checked through the other name.
  std::vector<LinkLater> links;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    links.swap(links_);
  }
  for (const auto& l : links) {
    FuseFs& fs = *roots_[l.root].fs;
    bool again = false;
    fs.ordered([&] {
      struct stat a {};
      struct stat b {};
      const bool first = ::fstatat(fs.rootFd(), l.first.c_str(), &a, AT_SYMLINK_NOFOLLOW) == 0 &&
                         a.st_dev == l.dev && a.st_ino == l.ino;
      const bool second = ::fstatat(fs.rootFd(), l.second.c_str(), &b, AT_SYMLINK_NOFOLLOW) == 0 &&
                          b.st_dev == l.dev && b.st_ino == l.ino;
      again = !first && second;
    });
    if (again) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        first_names_.erase(std::make_pair(l.root, std::make_pair(l.dev, l.ino)));
      }
      enqueue([this, l] { syncFile(l.root, l.second, true); });
    }
  }
  if (!waitIdle()) {
    return okStatus();
  }
  // Directory times last, deepest first: creating entries in them changed the secondary's.
  std::vector<std::pair<uint16_t, std::string>> dirs;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    dirs.swap(dirs_);
  }
  for (auto it = dirs.rbegin(); it != dirs.rend() && !stop_; ++it) {
    FuseFs& fs = *roots_[it->first].fs;
    fs.ordered([&] {
      struct stat st {};
      if (::fstatat(fs.rootFd(), it->second.empty() ? "." : it->second.c_str(), &st,
                    AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISDIR(st.st_mode)) {
        submit(it->first, timesOf(it->second, st));
      }
    });
  }
  return okStatus();
}

}  // namespace halo::rfs
