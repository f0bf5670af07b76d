#include "rfs/applier.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <utility>

#include "rfs/applier_util.h"

namespace halo::rfs {
namespace {

using namespace applier_internal;  // NOLINT: the file's own helpers

// The primary's modification time for a data change (op.h), when it sent one.
Status setMtime(int fd, const Op& op) {
  if (!carriesMtime(op)) {
    return okStatus();
  }
  const timespec ts[2] = {{0, UTIME_OMIT},
                          {static_cast<time_t>(op.mtime_sec), static_cast<long>(op.mtime_nsec)}};
  if (::futimens(fd, ts) != 0) {
    return errnoStatus("futimens", errno);
  }
  return okStatus();
}

// SetAttr's owner as chown takes it: -1 for an id the operation does not set.
std::pair<uid_t, gid_t> ownerToSet(const Op& op) {
  return {(op.flags & kSetUid) ? op.uid : static_cast<uid_t>(-1),
          (op.flags & kSetGid) ? op.gid : static_cast<gid_t>(-1)};
}

// SetAttr's times as utimensat and futimens take them: UTIME_OMIT for one it does not set.
std::array<timespec, 2> timesToSet(const Op& op) {
  std::array<timespec, 2> ts = {timespec{0, UTIME_OMIT}, timespec{0, UTIME_OMIT}};
  if (op.flags & kSetAtime) {
    ts[0] = {static_cast<time_t>(op.atime_sec), static_cast<long>(op.atime_nsec)};
  }
  if (op.flags & kSetMtime) {
    ts[1] = {static_cast<time_t>(op.mtime_sec), static_cast<long>(op.mtime_nsec)};
  }
  return ts;
}

constexpr size_t kWritePiece = 64 * 1024;

std::string describe(const Op& op) {
  std::string s = std::string(opTypeName(op.type)) + " \"" + op.path + "\"";
  if (op.type == OpType::Rename || op.type == OpType::Link || op.type == OpType::Symlink) {
    s += " -> \"" + op.path2 + "\"";
  }
  return s;
}

}  // namespace

Result<std::unique_ptr<Applier>> Applier::open(const std::string& root, ApplierOptions options) {
  int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return errnoStatus("open replicated directory " + root, errno);
  }
  std::unique_ptr<Applier> a(new Applier(fd, options));
  // Fail here, not on the first op, when the kernel lacks openat2 (Linux < 5.6).
  auto probe = openBeneath(fd, "", O_PATH | O_DIRECTORY);
  if (!probe.ok()) {
    return probe.status().withPrefix("replicated directory " + root);
  }
  return a;
}

Applier::Applier(int root_fd, ApplierOptions options) : root_fd_(root_fd), options_(options) {
  options_.open_files = std::max<size_t>(options_.open_files, 1);
}

Applier::~Applier() {
  for (auto& e : lru_) {
    ::close(e.fd);
  }
  ::close(root_fd_);
}

Status Applier::apply(const Op& op) {
  if (op.seq <= last_seq_) {
    return failedPrecondition(describe(op) + ": seq " + std::to_string(op.seq) +
                              " not after last applied " + std::to_string(last_seq_));
  }
  HALO_RETURN_IF_ERROR(validateOp(op));
  Status s;
  switch (op.type) {
    case OpType::SyncDir:
      s = applySyncDir(op);
      break;
    case OpType::SyncFile:
      s = applySyncFile(op);
      break;
    case OpType::VerifyBlocks:
      s = applyVerifyBlocks(op);
      break;
    case OpType::SyncSymlink:
      s = applySyncSymlink(op);
      break;
    case OpType::SyncNode:
      s = applySyncNode(op);
      break;
    case OpType::SyncLink:
      s = applySyncLink(op);
      break;
    case OpType::SyncXattrs:
      s = applySyncXattrs(op);
      break;
    case OpType::ResyncDone:
    case OpType::ResyncProgress:
    case OpType::Goodbye:
    case OpType::ResyncBegin:
      break;  // markers for the receiver
    default:
      s = applyLive(op);
      if (!s.ok() && tolerant_) {
        // What may be in the way on a tree not yet reintegrated goes, then once more; what still
        // fails is skipped: the walk brings the path to the primary's state.
        clearTheWay(op);
        s = applyLive(op);
        if (!s.ok()) {
          ++tolerated_;
          last_tolerated_ = describe(op) + ": " + s.message();
          s = okStatus();
        }
      }
  }
  if (!s.ok()) {
    return s.withPrefix(describe(op));
  }
  last_seq_ = op.seq;
  return okStatus();
}

Status Applier::applyLive(const Op& op) {
  switch (op.type) {
    case OpType::Write:
      return applyWrite(op);
    case OpType::Create:
      return applyCreate(op);
    case OpType::Mknod:
      return applyMknod(op);
    case OpType::Mkdir:
      return applyMkdir(op);
    case OpType::Unlink:
      return applyRemove(op, 0);
    case OpType::Rmdir:
      return applyRemove(op, AT_REMOVEDIR);
    case OpType::Rename:
      return applyRename(op);
    case OpType::Link:
      return applyLink(op);
    case OpType::Symlink:
      return applySymlink(op);
    case OpType::SetAttr:
      return applySetAttr(op);
    case OpType::Fallocate:
      return applyFallocate(op);
    case OpType::SetXattr:
    case OpType::RemoveXattr:
      return applyXattr(op);
    case OpType::Fsync:
      return applyFsync(op);
    default:
      return invalidArgument("not a live operation");
  }
}

Status Applier::applyWrite(const Op& op) {
  HALO_RETURN_IF_ERROR(checkRange(op.offset, op.data.size()));
  HALO_ASSIGN_OR_RETURN(int fd, writeFd(op.path));
  size_t done = 0;
  while (done < op.data.size()) {
    // In pieces: filling fresh page-cache pages costs much more per byte in one large write on
    // some virtual machines (memory returned to the host must be faulted back), and no less in
    // small ones anywhere (bench/rfs/README.md, reintegration).
    const size_t piece = std::min(op.data.size() - done, kWritePiece);
    ssize_t n = ::pwrite(fd, op.data.data() + done, piece, static_cast<off_t>(op.offset + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errnoStatus("pwrite", errno);
    }
    if (n == 0) {
      return internalError("pwrite wrote nothing");
    }
    done += static_cast<size_t>(n);
  }
  return setMtime(fd, op);
}

Status Applier::applyCreate(const Op& op) {
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
  // O_EXCL also refuses an existing symlink instead of following it.
  int raw = ::openat(p.fd, p.name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                     op.mode & 07777);
  if (raw < 0) {
    return errnoStatus("openat O_CREAT", errno);
  }
  UniqueFd fd(raw);
  // chown before chmod: chown clears set-user-ID bits.
  if (::fchown(fd.get(), op.uid, op.gid) != 0) {
    return errnoStatus("fchown", errno);
  }
  if (::fchmod(fd.get(), op.mode & 07777) != 0) {
    return errnoStatus("fchmod", errno);
  }
  cacheFd(op.path, fd.release());  // writes usually follow a create
  return okStatus();
}

Status Applier::applyMknod(const Op& op) {
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
  if (::mknodat(p.fd, p.name.c_str(), op.mode, op.rdev) != 0) {
    return errnoStatus("mknodat", errno);
  }
  HALO_RETURN_IF_ERROR(chownAt(p, op.uid, op.gid));
  return chmodAt(p, op.mode);
}

Status Applier::applyMkdir(const Op& op) {
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
  if (::mkdirat(p.fd, p.name.c_str(), op.mode & 07777) != 0) {
    return errnoStatus("mkdirat", errno);
  }
  HALO_RETURN_IF_ERROR(chownAt(p, op.uid, op.gid));
  return chmodAt(p, op.mode);
}

Status Applier::applyRemove(const Op& op, int at_flags) {
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
  dropCached(op.path);
  if (::unlinkat(p.fd, p.name.c_str(), at_flags) != 0) {
    return errnoStatus("unlinkat", errno);
  }
  return okStatus();
}

Status Applier::applyRename(const Op& op) {
  if ((op.flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) {
    return invalidArgument("flags " + std::to_string(op.flags) + " not supported");
  }
  HALO_ASSIGN_OR_RETURN(Parent from, openParent(root_fd_, op.path));
  HALO_ASSIGN_OR_RETURN(Parent to, openParent(root_fd_, op.path2));
  // Cached descriptors stay valid across a rename, but their keys would be wrong.
  dropCached(op.path);
  dropCached(op.path2);
  if (::renameat2(from.fd, from.name.c_str(), to.fd, to.name.c_str(),
                  static_cast<unsigned>(op.flags)) != 0) {
    return errnoStatus("renameat2", errno);
  }
  return okStatus();
}

Status Applier::applyLink(const Op& op) {
  HALO_ASSIGN_OR_RETURN(Parent from, openParent(root_fd_, op.path));
  HALO_ASSIGN_OR_RETURN(Parent to, openParent(root_fd_, op.path2));
  if (::linkat(from.fd, from.name.c_str(), to.fd, to.name.c_str(), 0) != 0) {
    return errnoStatus("linkat", errno);
  }
  return okStatus();
}

Status Applier::applySymlink(const Op& op) {
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
  if (::symlinkat(op.path2.c_str(), p.fd, p.name.c_str()) != 0) {
    return errnoStatus("symlinkat", errno);
  }
  return chownAt(p, op.uid, op.gid);
}

Status Applier::applySetAttr(const Op& op) {
  constexpr int32_t kKnown = kSetMode | kSetUid | kSetGid | kSetSize | kSetAtime | kSetMtime;
  if ((op.flags & ~kKnown) != 0) {
    return invalidArgument("unknown SetAttr flags " + std::to_string(op.flags));
  }
  // Size first and times last: truncation updates mtime, chown clears set-user-ID bits.
  if (op.flags & kSetSize) {
    HALO_RETURN_IF_ERROR(checkRange(0, op.length));
    HALO_ASSIGN_OR_RETURN(int fd, writeFd(op.path));
    if (::ftruncate(fd, static_cast<off_t>(op.length)) != 0) {
      return errnoStatus("ftruncate", errno);
    }
  }
  if (auto cached = by_path_.find(op.path); cached != by_path_.end()) {
    // A regular file open here (just created or written, as an untar's files are): through its
    // descriptor, without walking the path again for each attribute.
    return setAttrOn(cached->second->fd, op);
  }
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
  if (op.flags & (kSetUid | kSetGid)) {
    const auto [uid, gid] = ownerToSet(op);
    HALO_RETURN_IF_ERROR(chownAt(p, uid, gid));
  }
  if (op.flags & kSetMode) {
    struct stat st {};
    if (::fstatat(p.fd, p.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus("fstatat", errno);
    }
    // fchmodat would follow a symlink; Linux has no symlink permissions to set anyway.
    if (S_ISLNK(st.st_mode)) {
      return errnoStatus("fchmodat on a symlink", EOPNOTSUPP);
    }
    HALO_RETURN_IF_ERROR(chmodAt(p, op.mode));
  }
  if (op.flags & (kSetAtime | kSetMtime)) {
    const auto ts = timesToSet(op);
    if (::utimensat(p.fd, p.name.c_str(), ts.data(), AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus("utimensat", errno);
    }
  }
  return okStatus();
}

Status Applier::setAttrOn(int fd, const Op& op) {
  if (op.flags & (kSetUid | kSetGid)) {
    const auto [uid, gid] = ownerToSet(op);
    if (::fchown(fd, uid, gid) != 0) {
      return errnoStatus("fchown", errno);
    }
  }
  if ((op.flags & kSetMode) && ::fchmod(fd, op.mode & 07777) != 0) {
    return errnoStatus("fchmod", errno);
  }
  if (op.flags & (kSetAtime | kSetMtime)) {
    const auto ts = timesToSet(op);
    if (::futimens(fd, ts.data()) != 0) {
      return errnoStatus("futimens", errno);
    }
  }
  return okStatus();
}

Status Applier::applyFallocate(const Op& op) {
  HALO_RETURN_IF_ERROR(checkRange(op.offset, op.length));
  HALO_ASSIGN_OR_RETURN(int fd, writeFd(op.path));
  if (::fallocate(fd, op.flags, static_cast<off_t>(op.offset), static_cast<off_t>(op.length)) !=
      0) {
    return errnoStatus("fallocate", errno);
  }
  return setMtime(fd, op);
}

Status Applier::applyXattr(const Op& op) {
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
  // The magic link only jumps to the parent, already resolved beneath the root; the l* calls do
  // not follow the last component (see the header).
  std::string at = "/proc/self/fd/" + std::to_string(p.fd) + "/" + p.name;
  if (op.type == OpType::RemoveXattr) {
    if (::lremovexattr(at.c_str(), op.name.c_str()) != 0) {
      return errnoStatus("lremovexattr " + op.name, errno);
    }
    return okStatus();
  }
  if ((op.flags & ~(XATTR_CREATE | XATTR_REPLACE)) != 0) {
    return invalidArgument("unknown setxattr flags " + std::to_string(op.flags));
  }
  if (::lsetxattr(at.c_str(), op.name.c_str(), op.data.data(), op.data.size(), op.flags) != 0) {
    return errnoStatus("lsetxattr " + op.name, errno);
  }
  return okStatus();
}

Status Applier::applyFsync(const Op& op) {
  if (!options_.sync_on_fsync) {
    return okStatus();  // async="second": the page cache of this node is the promise
  }
  if (op.path.empty()) {
    // syncfs and fsync refuse O_PATH descriptors.
    HALO_ASSIGN_OR_RETURN(UniqueFd dir, openBeneath(root_fd_, "", O_RDONLY | O_DIRECTORY));
    if (::syncfs(dir.get()) != 0) {
      return errnoStatus("syncfs", errno);
    }
    return okStatus();
  }
  HALO_ASSIGN_OR_RETURN(UniqueFd probe, openBeneath(root_fd_, op.path, O_PATH | O_NOFOLLOW));
  struct stat st {};
  if (::fstat(probe.get(), &st) != 0) {
    return errnoStatus("fstat", errno);
  }
  UniqueFd dir;
  int fd = -1;
  if (S_ISREG(st.st_mode)) {
    HALO_ASSIGN_OR_RETURN(fd, writeFd(op.path));
  } else if (S_ISDIR(st.st_mode)) {
    HALO_ASSIGN_OR_RETURN(dir, openBeneath(root_fd_, op.path, O_RDONLY | O_DIRECTORY));
    fd = dir.get();
  } else {
    return okStatus();  // special files and symlinks have no data; their inode is in the dir
  }
  if ((op.datasync ? ::fdatasync(fd) : ::fsync(fd)) != 0) {
    return errnoStatus(op.datasync ? "fdatasync" : "fsync", errno);
  }
  return okStatus();
}

Result<int> Applier::writeFd(const std::string& path) {
  auto it = by_path_.find(path);
  if (it != by_path_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->fd;
  }
  // Look before opening: opening a device node or a FIFO for writing has effects of its own.
  HALO_ASSIGN_OR_RETURN(UniqueFd probe, openBeneath(root_fd_, path, O_PATH | O_NOFOLLOW));
  struct stat before {};
  if (::fstat(probe.get(), &before) != 0) {
    return errnoStatus("fstat", errno);
  }
  if (!S_ISREG(before.st_mode)) {
    return failedPrecondition("not a regular file");
  }
  // O_NONBLOCK has no effect on a regular file and keeps a swapped-in FIFO from blocking us.
  HALO_ASSIGN_OR_RETURN(UniqueFd fd,
                        openBeneath(root_fd_, path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  struct stat after {};
  if (::fstat(fd.get(), &after) != 0) {
    return errnoStatus("fstat", errno);
  }
  if (after.st_dev != before.st_dev || after.st_ino != before.st_ino) {
    return failedPrecondition("file replaced while opening");
  }
  int raw = fd.release();
  cacheFd(path, raw);
  return raw;
}

void Applier::cacheFd(const std::string& path, int fd) {
  dropCached(path);
  while (lru_.size() >= options_.open_files) {
    ::close(lru_.back().fd);
    by_path_.erase(lru_.back().path);
    lru_.pop_back();
  }
  lru_.push_front({path, fd});
  by_path_[path] = lru_.begin();
}

void Applier::dropCached(const std::string& path) {
  for (auto it = lru_.begin(); it != lru_.end();) {
    const std::string& p = it->path;
    bool under =
        p.size() > path.size() && p.compare(0, path.size(), path) == 0 && p[path.size()] == '/';
    if (p == path || under) {
      ::close(it->fd);
      by_path_.erase(p);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

Status Applier::syncToDisk() const {
  HALO_ASSIGN_OR_RETURN(UniqueFd dir, openBeneath(root_fd_, "", O_RDONLY | O_DIRECTORY));
  if (::syncfs(dir.get()) != 0) {
    return errnoStatus("syncfs", errno);
  }
  return okStatus();
}

}  // namespace halo::rfs
