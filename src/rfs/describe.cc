#include "rfs/describe.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <vector>

#include "rfs/op_stat.h"

namespace halo::rfs {

namespace {

constexpr int kMaxDepth = 4096;

uint64_t xattrs(int root_fd, const std::string& rel, const std::function<uint64_t(Op)>& submit) {
  const std::string at = "/proc/self/fd/" + std::to_string(root_fd) + "/" + rel;
  ssize_t n = ::llistxattr(at.c_str(), nullptr, 0);
  if (n <= 0) {
    return 0;
  }
  std::string names(static_cast<size_t>(n), '\0');
  n = ::llistxattr(at.c_str(), names.data(), names.size());
  uint64_t seq = 0;
  for (size_t pos = 0; n > 0 && pos < static_cast<size_t>(n);) {
    const std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    ssize_t v = ::lgetxattr(at.c_str(), name.c_str(), nullptr, 0);
    if (name.empty() || v < 0 || static_cast<size_t>(v) > kMaxXattrValue) {
      continue;
    }
    Op op;
    op.type = OpType::SetXattr;
    op.path = rel;
    op.name = name;
    op.data.resize(static_cast<size_t>(v));
    v = ::lgetxattr(at.c_str(), name.c_str(), op.data.data(), op.data.size());
    if (v >= 0) {
      op.data.resize(static_cast<size_t>(v));
      seq = submit(std::move(op));
    }
  }
  return seq;
}

uint64_t describe(int root_fd, const std::string& rel, const std::function<uint64_t(Op)>& submit,
                  const PathFilter& replicated, int depth) {
  struct stat st {};
  if (depth > kMaxDepth || ::fstatat(root_fd, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return 0;
  }
  if (depth > 0 && replicated && !replicated(rel, S_ISDIR(st.st_mode))) {
    return 0;  // (the caller decided for the top)
  }
  Op op;
  op.path = rel;
  op.uid = st.st_uid;
  op.gid = st.st_gid;
  uint64_t seq = 0;
  if (S_ISDIR(st.st_mode)) {
    op.type = OpType::Mkdir;
    op.mode = st.st_mode & 07777;
    seq = submit(std::move(op));
    int fd = ::openat(root_fd, rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
    if (d == nullptr && fd >= 0) {
      ::close(fd);
    }
    std::vector<std::string> names;
    while (d != nullptr) {
      dirent* e = ::readdir(d);
      if (e == nullptr) {
        break;
      }
      const std::string name = e->d_name;
      if (name != "." && name != "..") {
        names.push_back(name);
      }
    }
    if (d != nullptr) {
      ::closedir(d);
    }
    for (const auto& name : names) {
      seq = std::max(seq, describe(root_fd, rel + "/" + name, submit, replicated, depth + 1));
    }
  } else if (S_ISREG(st.st_mode)) {
    op.type = OpType::Create;
    op.mode = S_IFREG | (st.st_mode & 07777);
    seq = submit(std::move(op));
    int fd = ::openat(root_fd, rel.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    for (off_t at = 0; fd >= 0 && at < st.st_size;) {
      const off_t data = ::lseek(fd, at, SEEK_DATA);
      if (data < 0) {
        break;  // the rest is a hole
      }
      Op w;
      w.type = OpType::Write;
      w.path = rel;
      w.offset = static_cast<uint64_t>(data);
      w.data.resize(kMaxData);
      const ssize_t n = ::pread(fd, w.data.data(), w.data.size(), data);
      if (n <= 0) {
        break;
      }
      w.data.resize(static_cast<size_t>(n));
      seq = submit(std::move(w));
      at = data + n;
    }
    if (fd >= 0) {
      ::close(fd);
    }
    if (st.st_size > 0) {
      Op size;  // a hole at the end
      size.type = OpType::SetAttr;
      size.path = rel;
      size.flags = kSetSize;
      size.length = static_cast<uint64_t>(st.st_size);
      seq = submit(std::move(size));
    }
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
    const ssize_t n = ::readlinkat(root_fd, rel.c_str(), target.data(), target.size());
    if (n <= 0 || static_cast<size_t>(n) >= target.size()) {
      return seq;
    }
    target.resize(static_cast<size_t>(n));
    op.type = OpType::Symlink;
    op.path2 = std::move(target);
    seq = submit(std::move(op));
  } else {
    op.type = OpType::Mknod;
    op.mode = st.st_mode;
    op.rdev = st.st_rdev;
    seq = submit(std::move(op));
  }
  seq = std::max(seq, xattrs(root_fd, rel, submit));
  if (!S_ISLNK(st.st_mode)) {
    Op mode;  // the creating call on the peer applies its umask
    mode.type = OpType::SetAttr;
    mode.path = rel;
    mode.flags = kSetMode;
    mode.mode = st.st_mode & 07777;
    seq = submit(std::move(mode));
  }
  return std::max(seq, submit(timesOf(rel, st)));
}

}  // namespace

uint64_t describeForPeer(int root_fd, const std::string& rel,
                         const std::function<uint64_t(Op)>& submit, const PathFilter& replicated) {
  return describe(root_fd, rel, submit, replicated, 0);
}

}  // namespace halo::rfs
