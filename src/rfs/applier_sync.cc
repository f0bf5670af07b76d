// The applier's reintegration records (resync.h): each brings one path of the secondary's tree to
// the state the primary described at that place in the stream, whatever the secondary had there.

#include <dirent.h>
#include <sys/xattr.h>

#include <algorithm>
#include <optional>
#include <unordered_map>

#include "rfs/applier.h"
#include "rfs/applier_util.h"
#include "rfs/digest.h"

namespace halo::rfs {

using namespace applier_internal;  // NOLINT: the applier's own helpers

namespace {

constexpr int kMaxRemoveDepth = 4096;

std::string childOf(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// lstat beneath the root: nullopt when the path (or a parent) does not exist.
Result<std::optional<struct stat>> statAt(int root_fd, const std::string& path) {
  auto p = openParent(root_fd, path);
  if (!p.ok()) {
    return std::optional<struct stat>();
  }
  struct stat st {};
  if (::fstatat(p->fd, p->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return std::optional<struct stat>();
    }
    return errnoStatus("fstatat", errno);
  }
  return std::optional<struct stat>(st);
}

// Names and file types (S_IFMT bits) of a directory's entries.
Result<std::vector<DirEntry>> listEntries(int dir_fd) {
  int dup = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) {
    return errnoStatus("open directory", errno);
  }
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    ::close(dup);
    return errnoStatus("fdopendir", errno);
  }
  std::vector<DirEntry> out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;  // gone meanwhile
    }
    out.push_back({std::move(name), st.st_mode & S_IFMT});
  }
  ::closedir(d);
  return out;
}

// Removes everything in the directory `dir_fd`, depth first, never following a symlink.
Status removeChildren(int dir_fd, int depth) {
  if (depth > kMaxRemoveDepth) {
    return failedPrecondition("directory tree too deep to remove");
  }
  HALO_ASSIGN_OR_RETURN(auto entries, listEntries(dir_fd));
  for (const auto& e : entries) {
    if (e.type == S_IFDIR) {
      int sub = ::openat(dir_fd, e.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        continue;
      }
      UniqueFd guard(sub);
      HALO_RETURN_IF_ERROR(removeChildren(sub, depth + 1));
      if (::unlinkat(dir_fd, e.name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        return errnoStatus("rmdir " + e.name, errno);
      }
    } else if (::unlinkat(dir_fd, e.name.c_str(), 0) != 0 && errno != ENOENT) {
      return errnoStatus("unlink " + e.name, errno);
    }
  }
  return okStatus();
}

std::string xattrPath(const Parent& p) {
  return "/proc/self/fd/" + std::to_string(p.fd) + "/" + p.name;
}

Result<std::vector<std::string>> listXattrNames(const std::string& at) {
  std::string names;
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = ::llistxattr(at.c_str(), nullptr, 0);
    if (n < 0) {
      return errno == ENOTSUP ? std::vector<std::string>()
                              : Result<std::vector<std::string>>(errnoStatus("llistxattr", errno));
    }
    names.resize(static_cast<size_t>(n));
    n = ::llistxattr(at.c_str(), names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<size_t>(n));
      break;
    }
    if (errno != ERANGE) {
      return errnoStatus("llistxattr", errno);
    }
  }
  std::vector<std::string> out;
  for (size_t at_pos = 0; at_pos < names.size();) {
    size_t end = names.find('\0', at_pos);
    if (end == std::string::npos) {
      end = names.size();
    }
    if (end > at_pos) {
      out.push_back(names.substr(at_pos, end - at_pos));
    }
    at_pos = end + 1;
  }
  return out;
}

// Makes the extended attributes of the path exactly `wanted` (best effort on names the file
// system refuses, such as security labels it manages itself).
Status setXattrsExactly(int root_fd, const std::string& path, const XattrList& wanted) {
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd, path));
  const std::string at = xattrPath(p);
  HALO_ASSIGN_OR_RETURN(auto present, listXattrNames(at));
  for (const auto& name : present) {
    bool keep = false;
    for (const auto& w : wanted) {
      keep = keep || w.first == name;
    }
    if (!keep) {
      (void)::lremovexattr(at.c_str(), name.c_str());
    }
  }
  for (const auto& [name, value] : wanted) {
    if (::lsetxattr(at.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
      return errnoStatus("lsetxattr " + name, errno);
    }
  }
  return okStatus();
}

Status setTimes(const Parent& p, const Op& op) {
  timespec ts[2] = {{static_cast<time_t>(op.atime_sec), static_cast<long>(op.atime_nsec)},
                    {static_cast<time_t>(op.mtime_sec), static_cast<long>(op.mtime_nsec)}};
  if (::utimensat(p.fd, p.name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    return errnoStatus("utimensat", errno);
  }
  return okStatus();
}

bool holeAt(int fd, uint64_t offset, uint64_t length) {
  off_t data = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  return (data < 0 && errno == ENXIO) ||
         (data >= 0 && static_cast<uint64_t>(data) >= offset + length);
}

void addRange(std::vector<std::pair<uint64_t, uint64_t>>* ranges, uint64_t offset, uint64_t len) {
  if (!ranges->empty() && ranges->back().first + ranges->back().second == offset) {
    ranges->back().second += len;
  } else {
    ranges->emplace_back(offset, len);
  }
}

}  // namespace

Status Applier::removeTree(const std::string& path) {
  if (path.empty()) {
    return invalidArgument("the replicated directory itself cannot be removed");
  }
  dropCached(path);
  auto p = openParent(root_fd_, path);
  if (!p.ok()) {
    return okStatus();  // its parent is gone: so is it
  }
  struct stat st {};
  if (::fstatat(p->fd, p->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? okStatus() : errnoStatus("fstatat", errno);
  }
  if (S_ISDIR(st.st_mode)) {
    int sub = ::openat(p->fd, p->name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) {
      return errnoStatus("open directory", errno);
    }
    UniqueFd guard(sub);
    HALO_RETURN_IF_ERROR(removeChildren(sub, 0));
    if (::unlinkat(p->fd, p->name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return errnoStatus("rmdir", errno);
    }
    return okStatus();
  }
  if (::unlinkat(p->fd, p->name.c_str(), 0) != 0 && errno != ENOENT) {
    return errnoStatus("unlink", errno);
  }
  return okStatus();
}

void Applier::clearTheWay(const Op& op) {
  switch (op.type) {
    case OpType::Create:
    case OpType::Mknod:
    case OpType::Mkdir:
    case OpType::Symlink:
    case OpType::Unlink:
    case OpType::Rmdir:
      (void)removeTree(op.path);
      break;
    case OpType::Link:
      (void)removeTree(op.path2);
      break;
    case OpType::Rename:
      if ((op.flags & RENAME_EXCHANGE) == 0) {
        (void)removeTree(op.path2);
      }
      break;
    default:
      break;
  }
}

Status Applier::applySyncDir(const Op& op) {
  if (!op.path.empty()) {
    HALO_ASSIGN_OR_RETURN(auto st, statAt(root_fd_, op.path));
    if (st && !S_ISDIR(st->st_mode)) {
      HALO_RETURN_IF_ERROR(removeTree(op.path));
      st.reset();
    }
    HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
    if (!st && ::mkdirat(p.fd, p.name.c_str(), op.mode & 07777) != 0) {
      return errnoStatus("mkdirat", errno);
    }
    HALO_RETURN_IF_ERROR(chownAt(p, op.uid, op.gid));
    HALO_RETURN_IF_ERROR(chmodAt(p, op.mode));
  } else {
    if (::fchownat(root_fd_, "", op.uid, op.gid, AT_EMPTY_PATH) != 0) {
      return errnoStatus("fchownat", errno);
    }
    HALO_ASSIGN_OR_RETURN(UniqueFd dir, openBeneath(root_fd_, "", O_RDONLY | O_DIRECTORY));
    if (::fchmod(dir.get(), op.mode & 07777) != 0) {
      return errnoStatus("fchmod", errno);
    }
  }
  HALO_ASSIGN_OR_RETURN(auto listed, decodeEntries(op.data));
  auto& wanted = pending_entries_[op.path];
  wanted.insert(wanted.end(), listed.begin(), listed.end());
  if (op.flags & kSyncListMore) {
    return okStatus();
  }
  std::unordered_map<std::string, uint32_t> want;
  for (auto& e : wanted) {
    want.emplace(std::move(e.name), e.type);
  }
  pending_entries_.erase(op.path);
  HALO_ASSIGN_OR_RETURN(UniqueFd dir, openBeneath(root_fd_, op.path, O_RDONLY | O_DIRECTORY));
  HALO_ASSIGN_OR_RETURN(auto present, listEntries(dir.get()));
  std::unordered_map<std::string, uint32_t> kept;
  for (const auto& e : present) {
    const std::string rel = childOf(op.path, e.name);
    if (options_.replicated && !options_.replicated(rel, e.type == S_IFDIR)) {
      continue;  // this node's own, never the primary's to remove
    }
    auto it = want.find(e.name);
    if (it == want.end() || it->second != e.type) {
      HALO_RETURN_IF_ERROR(removeTree(rel));
    } else {
      kept.emplace(e.name, e.type);
    }
  }
  if ((op.flags & kSyncAnswerMissing) && options_.on_need) {
    // The entries the primary has and this node does not (any more): described next.
    NeedRanges need{options_.root, op.seq, op.path, {}, {}};
    for (const auto& [name, type] : want) {
      if (kept.count(name) == 0) {
        need.entries.push_back(name);
      }
    }
    std::sort(need.entries.begin(), need.entries.end());
    options_.on_need(std::move(need));
  }
  if (op.flags & kSyncNoXattrs) {
    HALO_RETURN_IF_ERROR(setXattrsExactly(root_fd_, op.path, {}));
  }
  return okStatus();
}

Status Applier::applySyncFile(const Op& op) {
  HALO_ASSIGN_OR_RETURN(auto st, statAt(root_fd_, op.path));
  // A regular file of ours with other names would carry the copy into them: it is made a file
  // of its own. The primary's other names of this inode come as SyncLink records after it.
  // (Not in a fast reintegration: the names were the same on both nodes at the sync point.)
  const bool ranges = (op.flags & kSyncRanges) != 0;
  if (st && (!S_ISREG(st->st_mode) || (st->st_nlink > 1 && !ranges))) {
    HALO_RETURN_IF_ERROR(removeTree(op.path));
    st.reset();
  }
  const bool created = !st;
  if (!st) {
    HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
    int raw = ::openat(p.fd, p.name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                       op.mode & 07777);
    if (raw < 0) {
      return errnoStatus("openat O_CREAT", errno);
    }
    cacheFd(op.path, raw);
  }
  HALO_ASSIGN_OR_RETURN(int fd, writeFd(op.path));
  HALO_RETURN_IF_ERROR(checkRange(0, op.length));
  if ((!st || static_cast<uint64_t>(st->st_size) != op.length) &&
      ::ftruncate(fd, static_cast<off_t>(op.length)) != 0) {
    return errnoStatus("ftruncate", errno);
  }
  // chown before chmod: chown clears set-user-ID bits.
  if (::fchown(fd, op.uid, op.gid) != 0) {
    return errnoStatus("fchown", errno);
  }
  if (::fchmod(fd, op.mode & 07777) != 0) {
    return errnoStatus("fchmod", errno);
  }
  if (op.flags & kSyncNoXattrs) {
    HALO_RETURN_IF_ERROR(setXattrsExactly(root_fd_, op.path, {}));
  }
  // A file sent whole needs no answer: its content follows right away. In a fast
  // reintegration, a file this node had to create needs all of its content.
  if ((op.flags & kSyncWholeFile) == 0 && options_.on_need) {
    NeedRanges need{options_.root, op.seq, op.path, {}, {}};
    if (ranges && created && op.length > 0) {
      need.ranges.emplace_back(0, op.length);
    }
    options_.on_need(std::move(need));
  }
  return okStatus();
}

Status Applier::applyVerifyBlocks(const Op& op) {
  const uint64_t block = op.length;
  const size_t count = op.data.size() / sizeof(BlockDigest);
  HALO_RETURN_IF_ERROR(checkRange(op.offset, block * count));
  NeedRanges need{options_.root, op.seq, op.path, {}, {}};
  auto fd = openBeneath(root_fd_, op.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  struct stat st {};
  if (!fd.ok() || ::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    // Nothing to compare with: the primary sends it all.
    need.ranges.emplace_back(op.offset, block * count);
  } else {
    std::string buf(block, '\0');
    const BlockDigest zero = blockDigest(std::string(block, '\0').data(), block);
    for (size_t i = 0; i < count; ++i) {
      const uint64_t at = op.offset + i * block;
      const BlockDigest* theirs = reinterpret_cast<const BlockDigest*>(op.data.data()) + i;
      if (at + block <= static_cast<uint64_t>(st.st_size) && holeAt(fd->get(), at, block)) {
        // A hole reads as zeroes: compared without reading it.
        if (*theirs != zero) {
          addRange(&need.ranges, at, block);
        }
        continue;
      }
      size_t got = 0;
      while (got < block) {
        ssize_t n = ::pread(fd->get(), buf.data() + got, block - got, static_cast<off_t>(at + got));
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n <= 0) {
          break;  // end of file (a read error counts as a difference)
        }
        got += static_cast<size_t>(n);
      }
      BlockDigest mine = blockDigest(buf.data(), got);
      if (std::memcmp(mine.data(), op.data.data() + i * sizeof(BlockDigest), mine.size()) != 0) {
        addRange(&need.ranges, at, block);
      }
    }
  }
  if (options_.on_need) {
    options_.on_need(std::move(need));
  }
  return okStatus();
}

Status Applier::applySyncSymlink(const Op& op) {
  HALO_ASSIGN_OR_RETURN(auto st, statAt(root_fd_, op.path));
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
  bool same = false;
  if (st && S_ISLNK(st->st_mode)) {
    std::string target(op.path2.size() + 1, '\0');
    ssize_t n = ::readlinkat(p.fd, p.name.c_str(), target.data(), target.size());
    same = n >= 0 && static_cast<size_t>(n) == op.path2.size() &&
           target.compare(0, op.path2.size(), op.path2) == 0;
  }
  if (!same) {
    if (st) {
      HALO_RETURN_IF_ERROR(removeTree(op.path));
    }
    if (::symlinkat(op.path2.c_str(), p.fd, p.name.c_str()) != 0) {
      return errnoStatus("symlinkat", errno);
    }
  }
  HALO_RETURN_IF_ERROR(chownAt(p, op.uid, op.gid));
  if (op.flags & kSyncNoXattrs) {
    HALO_RETURN_IF_ERROR(setXattrsExactly(root_fd_, op.path, {}));
  }
  return setTimes(p, op);
}

Status Applier::applySyncNode(const Op& op) {
  HALO_ASSIGN_OR_RETURN(auto st, statAt(root_fd_, op.path));
  HALO_ASSIGN_OR_RETURN(Parent p, openParent(root_fd_, op.path));
  const bool device = S_ISCHR(op.mode) || S_ISBLK(op.mode);
  const bool same = st && (st->st_mode & S_IFMT) == (op.mode & S_IFMT) &&
                    (!device || st->st_rdev == static_cast<dev_t>(op.rdev));
  if (!same) {
    if (st) {
      HALO_RETURN_IF_ERROR(removeTree(op.path));
    }
    if (::mknodat(p.fd, p.name.c_str(), op.mode, static_cast<dev_t>(op.rdev)) != 0) {
      return errnoStatus("mknodat", errno);
    }
  }
  HALO_RETURN_IF_ERROR(chownAt(p, op.uid, op.gid));
  HALO_RETURN_IF_ERROR(chmodAt(p, op.mode));
  if (op.flags & kSyncNoXattrs) {
    HALO_RETURN_IF_ERROR(setXattrsExactly(root_fd_, op.path, {}));
  }
  return setTimes(p, op);
}

Status Applier::applySyncLink(const Op& op) {
  HALO_ASSIGN_OR_RETURN(auto first, statAt(root_fd_, op.path));
  if (!first || S_ISDIR(first->st_mode)) {
    ++tolerated_;  // the first name went away meanwhile: the walk or a live operation follows
    last_tolerated_ = "SyncLink \"" + op.path + "\": no such file";
    return okStatus();
  }
  HALO_ASSIGN_OR_RETURN(auto second, statAt(root_fd_, op.path2));
  if (second && second->st_dev == first->st_dev && second->st_ino == first->st_ino) {
    return okStatus();
  }
  if (second) {
    HALO_RETURN_IF_ERROR(removeTree(op.path2));
  }
  HALO_ASSIGN_OR_RETURN(Parent from, openParent(root_fd_, op.path));
  HALO_ASSIGN_OR_RETURN(Parent to, openParent(root_fd_, op.path2));
  if (::linkat(from.fd, from.name.c_str(), to.fd, to.name.c_str(), 0) != 0) {
    return errnoStatus("linkat", errno);
  }
  return okStatus();
}

Status Applier::applySyncXattrs(const Op& op) {
  HALO_ASSIGN_OR_RETURN(XattrList wanted, decodeXattrs(op.data));
  return setXattrsExactly(root_fd_, op.path, wanted);
}

}  // namespace halo::rfs
