// Probes against real sockets and interfaces of this machine, on loopback only.

#include "sys/probes.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace halo::sys {
namespace {

// A loopback TCP socket bound to an ephemeral port, listening when backlog >= 0.
class LoopbackSocket {
 public:
  LoopbackSocket(int family, int backlog) {
    fd_ = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*a);
    }
    ok_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0 &&
          getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
          (backlog < 0 || listen(fd_, backlog) == 0);
    port_ = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  ~LoopbackSocket() { closeNow(); }
  void closeNow() {
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  bool ok() const { return ok_; }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  bool ok_ = false;
};

TEST(ProbeTcpTest, ListeningPortIsUp) {
  LoopbackSocket server(AF_INET, 16);
  ASSERT_TRUE(server.ok());
  const ProbeOutcome out = probeTcp("127.0.0.1", server.port(), Millis(2000));
  EXPECT_TRUE(out.up) << out.detail;
}

TEST(ProbeTcpTest, Ipv6AndHostNameAreUp) {
  LoopbackSocket v6(AF_INET6, 16);
  ASSERT_TRUE(v6.ok());
  const ProbeOutcome out = probeTcp("::1", v6.port(), Millis(2000));
  EXPECT_TRUE(out.up) << out.detail;
  EXPECT_NE(out.detail.find("[::1]:"), std::string::npos) << out.detail;
  LoopbackSocket v4(AF_INET, 16);
  ASSERT_TRUE(v4.ok());
  // localhost comes from /etc/hosts (no DNS traffic); it may list ::1 first, which refuses here.
  const ProbeOutcome named = probeTcp("localhost", v4.port(), Millis(2000));
  EXPECT_TRUE(named.up) << named.detail;
}

TEST(ProbeTcpTest, ClosedPortIsRefused) {
  LoopbackSocket bound(AF_INET, -1);  // bound, not listening: nothing accepts on this port
  ASSERT_TRUE(bound.ok());
  const ProbeOutcome out = probeTcp("127.0.0.1", bound.port(), Millis(2000));
  EXPECT_FALSE(out.up);
  EXPECT_EQ(out.detail,
            "connect 127.0.0.1:" + std::to_string(bound.port()) + ": Connection refused");
}

TEST(ProbeTcpTest, FullBacklogTimesOut) {
  // With backlog 0 the accept queue holds one connection; further SYNs are dropped unanswered.
  LoopbackSocket server(AF_INET, 0);
  ASSERT_TRUE(server.ok());
  std::vector<int> fillers;
  for (int i = 0; i < 2; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(server.port()));
    connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    pollfd p{fd, POLLOUT, 0};
    poll(&p, 1, 300);
    fillers.push_back(fd);
  }
  const auto start = std::chrono::steady_clock::now();
  const ProbeOutcome out = probeTcp("127.0.0.1", server.port(), Millis(300));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(out.up);
  EXPECT_EQ(out.detail,
            "connect 127.0.0.1:" + std::to_string(server.port()) + ": no answer within 300 ms");
  EXPECT_GE(took, Millis(290));
  EXPECT_LT(took, Millis(2000));
  for (int fd : fillers) {
    close(fd);
  }
}

TEST(ProbeTcpTest, InvalidPortIsDown) {
  EXPECT_FALSE(probeTcp("127.0.0.1", 0, Millis(100)).up);
  EXPECT_FALSE(probeTcp("127.0.0.1", 70000, Millis(100)).up);
}

TEST(ProbePingTest, LoopbackAnswers) {
  const ProbeOutcome v4 = probePing("127.0.0.1", Millis(3000));
  EXPECT_TRUE(v4.up) << v4.detail;
  EXPECT_EQ(v4.detail, "ICMP echo reply from 127.0.0.1");
  const ProbeOutcome v6 = probePing("::1", Millis(3000));
  EXPECT_TRUE(v6.up) << v6.detail;
  EXPECT_EQ(v6.detail, "ICMPv6 echo reply from ::1");
}

TEST(ProbeTest, ConcurrentProbesDoNotInterfere) {
  // Checker threads probe at the same time; each must see only its own replies.
  LoopbackSocket server(AF_INET, 64);
  ASSERT_TRUE(server.ok());
  std::vector<std::thread> threads;
  std::vector<int> up(8, 0);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      const bool ok = i % 2 == 0 ? probePing("127.0.0.1", Millis(3000)).up
                                 : probeTcp("127.0.0.1", server.port(), Millis(3000)).up;
      up[i] = ok ? 1 : 0;
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(up, std::vector<int>(8, 1));
}

TEST(ProbeInterfaceTest, LoopbackIsUpAndUnknownAddressIsDown) {
  const ProbeOutcome lo = probeInterface("127.0.0.1");
  EXPECT_TRUE(lo.up) << lo.detail;
  EXPECT_EQ(lo.detail, "interface lo (127.0.0.1) up");
  EXPECT_TRUE(probeInterface("::1").up);
  const ProbeOutcome none = probeInterface("198.18.0.77");
  EXPECT_FALSE(none.up);
  EXPECT_EQ(none.detail, "no interface holds 198.18.0.77");
}

TEST(ProbeAddressPresentTest, HeldAndMissingAddresses) {
  const ProbeOutcome held = probeAddressPresent("127.0.0.1");
  EXPECT_TRUE(held.up) << held.detail;
  EXPECT_EQ(held.detail, "127.0.0.1 held by interface lo");
  const ProbeOutcome missing = probeAddressPresent("198.18.0.77");
  EXPECT_FALSE(missing.up);
  EXPECT_EQ(missing.detail, "no interface holds 198.18.0.77");
  EXPECT_FALSE(probeAddressPresent("2001:db8::77").up);
}

}  // namespace
}  // namespace halo::sys
