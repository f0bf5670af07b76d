#pragma once
// Test-only helpers for tests that build their own network namespaces: a shell runner, an RAII
// namespace guard that can run code inside the namespace, and small address/capture helpers.
// Each test passes its own namespace-name prefix, which also scopes the cleanup of namespaces left
// by crashed runs.
// Needs root (CAP_SYS_ADMIN for setns, CAP_NET_ADMIN, CAP_NET_RAW).

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sys/netlink_addr.h"

namespace halo::sys::testutil {

// Sets `lo` up in the calling thread's network namespace (a fresh namespace has it down): for
// test binaries that unshare(CLONE_NEWNET) at start and talk over 127.0.0.1.
inline bool bringLoopbackUp() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  close(fd);
  return ok;
}

// Runs a shell command, returns its output; `rc` receives the exit status.
inline std::string run(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    if (rc != nullptr) {
      *rc = -1;
    }
    return out;
  }
  char buf[512];
  while (::fgets(buf, sizeof(buf), p) != nullptr) {
    out += buf;
  }
  const int status = ::pclose(p);
  if (rc != nullptr) {
    *rc = status;
  }
  return out;
}

// Parses `text`, failing the test (not aborting it) when it is not an address.
inline IpAddr ip(const std::string& text) {
  auto a = IpAddr::parse(text);
  EXPECT_TRUE(a.ok()) << text;
  return a.ok() ? *a : IpAddr{};
}

// Deletes namespaces named `prefix`<pid>... whose process is gone (a crashed test runs no
// destructors).
inline void removeStaleNamespaces(const std::string& prefix) {
  const std::string list = run("ip netns list");
  size_t pos = 0;
  while ((pos = list.find(prefix, pos)) != std::string::npos) {
    const size_t end = list.find_first_of(" \n", pos);
    const std::string name = list.substr(pos, end - pos);
    pos = end;
    const int pid = std::atoi(name.c_str() + prefix.size());
    if (pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0) {
      run("ip netns del " + name);
    }
  }
}

// Sequence number for namespace names. Process-wide so names never repeat within one run even
// when a deletion failed; atomic because guards may be built on any thread.
inline std::atomic<int> netns_counter{0};

// Owns one namespace, `prefix`<pid>-<n>: created in the constructor, deleted in the destructor.
class NetnsGuard {
 public:
  explicit NetnsGuard(const std::string& prefix) {
    name_ = prefix + std::to_string(::getpid()) + "-" + std::to_string(++netns_counter);
    int rc = 0;
    const std::string out = run("ip netns add " + name_, &rc);
    created_ = rc == 0;
    EXPECT_TRUE(created_) << out;
  }
  ~NetnsGuard() {
    if (created_) {
      run("ip netns del " + name_);
    }
  }
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

  const std::string& name() const { return name_; }
  bool created() const { return created_; }
  // `ip -n <ns> <args>`; fails the test when it fails.
  std::string ip(const std::string& args) const {
    int rc = 0;
    std::string out = run("ip -n " + name_ + " " + args, &rc);
    EXPECT_EQ(rc, 0) << "ip -n " << name_ << " " << args << ": " << out;
    return out;
  }
  // Runs `body` on a thread that has entered the namespace (the rest of the process stays out).
  void inside(const std::function<void()>& body) const {
    std::thread t([&] {
      const int fd = ::open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0) << std::strerror(errno);
      const int rc = ::setns(fd, CLONE_NEWNET);
      ::close(fd);
      ASSERT_EQ(rc, 0) << std::strerror(errno);
      body();
    });
    t.join();
  }

 private:
  std::string name_;
  bool created_ = false;
};

// True when `list` holds `a`; `found` (optional) receives that entry.
inline bool hasAddress(const std::vector<AddrEntry>& list, const IpAddr& a,
                       AddrEntry* found = nullptr) {
  for (const auto& e : list) {
    if (e.address == a) {
      if (found != nullptr) {
        *found = e;
      }
      return true;
    }
  }
  return false;
}

// A packet socket on `ifindex` receiving every frame; -1 on failure. `type_flags` is OR-ed into
// the socket type (e.g. SOCK_NONBLOCK for an event loop). Created in the calling thread's
// namespace and usable from any thread.
inline int captureSocket(int ifindex, int type_flags = 0) {
  const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | type_flags, htons(ETH_P_ALL));
  if (fd < 0) {
    return -1;
  }
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = ifindex;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Waits up to 3 s for the TCP socket `fd` to see its connection end: EOF or ECONNRESET. Call it
// through ASSERT_NO_FATAL_FAILURE so a connection that stays open stops the test.
inline void expectConnectionClosed(int fd) {
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 3000), 1);
  char c = 0;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  const int err = errno;
  EXPECT_TRUE(n == 0 || (n < 0 && err == ECONNRESET)) << n << " " << std::strerror(err);
}

}  // namespace halo::sys::testutil
