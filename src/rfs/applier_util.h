#pragma once
// Helpers of the applier (applier.cc, applier_sync.cc): descriptors and path resolution beneath
// the replicated directory, never crossing a symlink. Internal to the applier.

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "base/status.h"

namespace halo::rfs::applier_internal {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Opens `path` ("" = the root itself) beneath `root_fd`, crossing no symlink and no magic link.
inline Result<UniqueFd> openBeneath(int root_fd, const std::string& path, uint64_t flags) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const char* p = path.empty() ? "." : path.c_str();
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, root_fd, p, &how, sizeof(how));
    if (fd >= 0) {
      return UniqueFd(static_cast<int>(fd));
    }
    // EAGAIN: a concurrent rename made the kernel unsure the walk stayed beneath; retry a bit.
    if ((errno == EINTR || errno == EAGAIN) && attempt < 8) {
      continue;
    }
    return errnoStatus("openat2 \"" + path + "\"", errno);
  }
}

// The directory holding a path's last component, and that component: the *at calls take the
// pair, so the last component is never resolved by a path walk. The root is (root_fd, ".").
struct Parent {
  UniqueFd owned;
  int fd = -1;
  std::string name;
};

inline Result<Parent> openParent(int root_fd, const std::string& path) {
  Parent p;
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    p.fd = root_fd;
    p.name = path.empty() ? "." : path;
    return p;
  }
  HALO_ASSIGN_OR_RETURN(p.owned, openBeneath(root_fd, path.substr(0, slash), O_PATH | O_DIRECTORY));
  p.fd = p.owned.get();
  p.name = path.substr(slash + 1);
  return p;
}

inline Status checkRange(uint64_t offset, uint64_t length) {
  constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<off_t>::max());
  if (offset > kMax || length > kMax - offset) {
    return invalidArgument("offset " + std::to_string(offset) + " + length " +
                           std::to_string(length) + " beyond the largest file offset");
  }
  return okStatus();
}

inline Status chownAt(const Parent& p, uint32_t uid, uint32_t gid) {
  if (::fchownat(p.fd, p.name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return errnoStatus("fchownat", errno);
  }
  return okStatus();
}

// For a file created just now (so not a symlink): the creating call applied the umask.
inline Status chmodAt(const Parent& p, uint32_t mode) {
  if (::fchmodat(p.fd, p.name.c_str(), mode & 07777, 0) != 0) {
    return errnoStatus("fchmodat", errno);
  }
  return okStatus();
}

}  // namespace halo::rfs::applier_internal
