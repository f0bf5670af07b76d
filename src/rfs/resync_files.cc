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
  // Hashing first, outside the lock: kept only if the inode saw no change meanwhile. A fast
  // reintegration compares what a crash may have left different: by 4 KiB, so that it copies
  // about what differs.
  const uint64_t block = fast_ ? ChangeLog::kBlock : options_.block_size;
  const bool whole = hintedMissing(root, path);
  if (!whole && modified_after_ != 0) {
    struct stat st {};
    if (::fstatat(root_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_mtim.tv_sec < modified_after_) {
      // secondforce -d: taken as identical on the secondary, which has it.
      files_done_ += 1;
      std::lock_guard<std::mutex> lock(mutex_);
      pending_files_.erase({root, path});
      return;
    }
  }
  std::vector<BlockDigest> digests;
  struct stat hashed {};
  if (!whole) {
    auto fd = openForReading(root_fd, path);
    if (fd.ok() && ::fstat(fd->get(), &hashed) == 0 && S_ISREG(hashed.st_mode)) {
      std::string buf(block, '\0');
      const std::string zeros(block, '\0');
      const BlockDigest zero_digest = blockDigest(zeros.data(), zeros.size());
      for (uint64_t at = 0; at < static_cast<uint64_t>(hashed.st_size) && !stop_; at += block) {
        if (at + block <= static_cast<uint64_t>(hashed.st_size) &&
            isHole(fd->get(), at, block, hashed)) {
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
    const uint64_t blocks = (static_cast<uint64_t>(st.st_size) + block - 1) / block;
    if (valid && digests.size() > blocks) {
      digests.resize(blocks);
    }
    const uint64_t compared_end =
        std::min<uint64_t>(static_cast<uint64_t>(st.st_size), digests.size() * block);
    const XattrList x = readXattrs(root_fd, path);
    Op op = syncFileOp(path, st,
                       (valid ? 0 : kSyncWholeFile) | (hard_linked ? kSyncHardLinked : 0) |
                           (x.empty() ? kSyncNoXattrs : 0));
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
      v.offset = i * block;
      v.length = block;
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
    registered = registerFileLocked(root, path, size, size, seqs, copies);
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
                                      uint64_t progress_bytes, const std::vector<uint64_t>& seqs,
                                      const std::vector<std::pair<uint64_t, uint64_t>>& copies) {
  const uint64_t id = next_file_++;
  PendingFile f;
  f.root = root;
  f.path = path;
  f.size = size;
  f.progress_bytes = progress_bytes;
  f.replies = static_cast<int>(seqs.size());
  queueCopiesLocked(id, &f, copies);
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
    queueCopiesLocked(id, &f->second, need.ranges);
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

void Resyncer::queueCopiesLocked(uint64_t file_id, PendingFile* f,
                                 const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  // Pieces of at most one record each, packed into batches of at most kCopyChunk bytes: a
  // batch is read with one open and submitted under one lock (a fast reintegration copies
  // many scattered 4 KiB ranges).
  std::vector<std::pair<uint64_t, uint64_t>> batch;
  uint64_t batched = 0;
  auto flush = [&] {
    if (batch.empty()) {
      return;
    }
    ++f->copies;
    tasks_.push_back([this, file_id, b = std::move(batch)] { copyRanges(file_id, b); });
    batch.clear();
    batched = 0;
  };
  for (auto [offset, length] : ranges) {
    const uint64_t end = std::min(f->size, offset + length);
    for (uint64_t at = offset; at < end; at += kCopyChunk) {
      const uint64_t n = std::min<uint64_t>(kCopyChunk, end - at);
      if (batched + n > kCopyChunk) {
        flush();
      }
      batch.emplace_back(at, n);
      batched += n;
    }
  }
  flush();
}

void Resyncer::copyRanges(uint64_t file_id,
                          const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
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
  struct Piece {
    uint64_t offset;
    uint64_t length;
    std::string data;  // filled by the read (a hole is not read)
    ssize_t got = -1;
    bool hole = false;
  };
  std::vector<Piece> pieces;
  uint64_t total = 0;
  for (auto [offset, length] : ranges) {
    pieces.push_back({offset, length, std::string(), -1, false});
    total += length;
  }
  throttle(total);
  const uint64_t before = hub_.lastSeq();
  // Kept open until the check below: an inode held open cannot be freed, so its number cannot
  // come back as another file's meanwhile.
  struct stat read_st {};
  auto read = [&](int fd, const struct stat& st) {
    for (auto& p : pieces) {
      p.hole = isHole(fd, p.offset, p.length, st);
      p.got = 0;
      if (!p.hole) {
        p.data.resize(p.length);
        p.got = readFully(fd, p.data.data(), p.data.size(), p.offset);
        if (p.got < 0) {
          return false;
        }
      }
    }
    return true;
  };
  auto fd = openForReading(root_fd, path);
  const bool read_ok = fd.ok() && ::fstat(fd->get(), &read_st) == 0 && read(fd->get(), read_st);
  hub_.waitRoom(session_);
  Status error;
  fs.ordered([&] {
    struct stat st {};
    if (::fstatat(root_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      return;  // gone: the live stream removed it on the secondary too
    }
    if (!read_ok || read_st.st_nlink == 0 || st.st_ino != read_st.st_ino ||
        st.st_dev != read_st.st_dev || fs.lastDataChange(st.st_dev, st.st_ino) > before) {
      // Changed while being read: read it again, now that nothing can change it.
      auto again = openForReading(root_fd, path);
      if (!again.ok()) {
        error = again.status();
        return;
      }
      if (!read(again->get(), st)) {
        error = errnoStatus("reading " + path, errno);
        return;
      }
    }
    for (auto& p : pieces) {
      Op op;
      op.path = path;
      op.offset = p.offset;
      if (p.hole) {
        // A hole of a sparse file: zeroes on the secondary too, without sending them.
        op.type = OpType::Fallocate;
        op.flags = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
        op.length = p.length;
        submit(root, std::move(op));
        continue;
      }
      if (p.got == 0) {
        continue;  // beyond the end now: a live truncate said it
      }
      op.type = OpType::Write;
      p.data.resize(static_cast<size_t>(p.got));
      const uint64_t got = static_cast<uint64_t>(p.got);
      op.data = std::move(p.data);
      if (submit(root, std::move(op)) != 0) {
        bytes_copied_ += got;
      }
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
  bytes_done_ += f.progress_bytes;
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
