#pragma once
// Helpers of the reintegration (resync.cc, resync_files.cc): reading the primary's real tree.
// Internal to the Resyncer.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

#include "rfs/applier_util.h"
#include "rfs/digest.h"
#include "rfs/op.h"

namespace halo::rfs::resync_internal {

using applier_internal::openBeneath;
using applier_internal::UniqueFd;

inline constexpr size_t kCopyChunk = kMaxData;  // one Write record
inline constexpr size_t kDigestsPerRecord = kMaxData / sizeof(BlockDigest);
inline constexpr size_t kMaxQueuedFiles = 4096;
// A SyncDir or SyncXattrs record stays under this many bytes of list (kMaxData, with room).
inline constexpr size_t kListBytesPerRecord = kMaxData - 4096;

inline std::string childOf(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// The SyncFile record describing regular file `path` as `st` says (flags: kSync*).
inline Op syncFileOp(const std::string& path, const struct stat& st, int32_t flags) {
  Op op;
  op.type = OpType::SyncFile;
  op.path = path;
  op.mode = st.st_mode;
  op.uid = st.st_uid;
  op.gid = st.st_gid;
  op.length = static_cast<uint64_t>(st.st_size);
  op.flags = flags;
  return op;
}

// Every extended attribute of a path beneath `root_fd` (not following a final symlink).
inline XattrList readXattrs(int root_fd, const std::string& path) {
  XattrList out;
  const std::string at =
      "/proc/self/fd/" + std::to_string(root_fd) + (path.empty() ? "" : "/" + path);
  auto list = path.empty() ? ::listxattr : ::llistxattr;
  auto get = path.empty() ? ::getxattr : ::lgetxattr;
  ssize_t n = list(at.c_str(), nullptr, 0);
  if (n <= 0) {
    return out;
  }
  std::string names(static_cast<size_t>(n), '\0');
  n = list(at.c_str(), names.data(), names.size());
  if (n <= 0) {
    return out;
  }
  names.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < names.size();) {
    size_t end = names.find('\0', pos);
    if (end == std::string::npos) {
      end = names.size();
    }
    std::string name = names.substr(pos, end - pos);
    pos = end + 1;
    if (name.empty()) {
      continue;
    }
    ssize_t v = get(at.c_str(), name.c_str(), nullptr, 0);
    if (v < 0 || static_cast<size_t>(v) > kMaxXattrValue) {
      continue;
    }
    std::string value(static_cast<size_t>(v), '\0');
    v = get(at.c_str(), name.c_str(), value.data(), value.size());
    if (v >= 0) {
      value.resize(static_cast<size_t>(v));
      out.emplace_back(std::move(name), std::move(value));
    }
  }
  return out;
}

// pread until `size` bytes or the end of the file.
inline ssize_t readFully(int fd, char* buf, size_t size, uint64_t offset) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(fd, buf + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return -1;
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
}

// Whether [offset, offset + length) of the file holds no data at all (inside its size).
inline bool isHole(int fd, uint64_t offset, uint64_t length, const struct stat& st) {
  if (offset >= static_cast<uint64_t>(st.st_size)) {
    return false;
  }
  off_t data = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) {
    return errno == ENXIO;  // no data from here to the end
  }
  return static_cast<uint64_t>(data) >= offset + length;
}

inline Result<UniqueFd> openForReading(int root_fd, const std::string& path) {
  auto fd = openBeneath(root_fd, path, O_RDONLY | O_NOFOLLOW | O_NOATIME | O_NONBLOCK);
  if (!fd.ok()) {
    fd = openBeneath(root_fd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);  // not the owner
  }
  return fd;
}

}  // namespace halo::rfs::resync_internal
