// VIP OS side against a real kernel: every network test runs in its own network namespace
// (halo-vipt-<pid>-N) holding a veth pair va <-> vb, addresses from 198.18.0.0/15 and
// fd00:198:18::/64 only. The namespace is deleted by an RAII guard even when a test fails.
// Needs root (CAP_SYS_ADMIN for setns, CAP_NET_ADMIN, CAP_NET_RAW).

#include <arpa/inet.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/ip6.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "sys/garp.h"
#include "sys/netlink_addr.h"
#include "sys/netns_test_util.h"
#include "sys/tcp_reset.h"
#include "sys/test_temp_dir.h"
#include "sys/vip_owner.h"

namespace halo::sys {
namespace {

using testutil::captureSocket;
using testutil::expectConnectionClosed;
using testutil::hasAddress;
using testutil::ip;
using testutil::NetnsGuard;

constexpr const char* kNsPrefix = "halo-vipt-";

class VipNetnsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { testutil::removeStaleNamespaces(kNsPrefix); }

  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root";
    }
    ASSERT_TRUE(ns_.created());
    ns_.ip("link set lo up");
    ns_.ip("link add va type veth peer name vb");
    ns_.ip("addr add 198.18.0.1/24 dev va");
    ns_.ip("addr add 198.18.1.2/24 dev vb");
    ns_.ip("addr add fd00:198:18::1/64 dev va nodad");
    ns_.ip("link set va up");
    ns_.ip("link set vb up");
  }

  NetnsGuard ns_{kNsPrefix};
};

std::string routeSource(const NetnsGuard& ns, const std::string& dst) {
  const std::string out = ns.ip("-4 route get " + dst);
  const size_t p = out.find(" src ");
  if (p == std::string::npos) {
    return "";
  }
  const size_t start = p + 5;
  return out.substr(start, out.find(' ', start) - start);
}

// Reads frames for up to 3 s until `match` accepts one.
bool waitForFrame(int fd, const std::function<bool(const uint8_t*, size_t)>& match) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  uint8_t buf[2048];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) {
      continue;
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0 && match(buf, static_cast<size_t>(n))) {
      return true;
    }
  }
  return false;
}

TEST(VipUnitTest, ParseAndContain) {
  EXPECT_EQ(ip("198.18.0.100").toString(), "198.18.0.100");
  EXPECT_EQ(ip("fd00:198:18::100").toString(), "fd00:198:18::100");
  EXPECT_FALSE(IpAddr::parse("198.18.0.300").ok());
  EXPECT_TRUE(prefixContains(ip("198.18.0.1"), 24, ip("198.18.0.200")));
  EXPECT_FALSE(prefixContains(ip("198.18.0.1"), 24, ip("198.18.1.200")));
  EXPECT_TRUE(prefixContains(ip("198.18.0.1"), 15, ip("198.19.255.1")));
  EXPECT_FALSE(prefixContains(ip("198.18.0.1"), 24, ip("fd00::1")));
  EXPECT_TRUE(prefixContains(ip("fd00:198:18::1"), 64, ip("fd00:198:18::ffff")));
  EXPECT_FALSE(prefixContains(ip("fd00:198:18::1"), 64, ip("fd00:198:19::1")));
}

TEST(VipUnitTest, StateFileRoundTrip) {
  std::vector<OwnedAddress> owned = {{ip("198.18.0.100"), 24, "va"},
                                     {ip("fd00:198:18::100"), 64, "eth0"}};
  const std::string text = encodeOwnedAddresses(owned);
  const std::string head =
      R"({"addresses":[{"address":"198.18.0.100","prefix":24,"interface":"va"})";
  EXPECT_EQ(text.substr(0, head.size()), head);
  auto back = decodeOwnedAddresses(text);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(*back, owned);
  auto empty = decodeOwnedAddresses(" { \"addresses\" : [ ] } ");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_FALSE(decodeOwnedAddresses("{\"addresses\":[{\"address\":\"x\"}]}").ok());
  EXPECT_FALSE(decodeOwnedAddresses("{\"addresses\":[").ok());
}

TEST_F(VipNetnsTest, AddListDeleteIpv4) {
  ns_.inside([] {
    auto va = interfaceIndex("va");
    ASSERT_TRUE(va.ok());
    const IpAddr vip = ip("198.18.0.100");
    ASSERT_TRUE(addAddress(*va, vip, 24, VipPlacement::kAlias).ok());
    auto list = listAddresses(*va);
    ASSERT_TRUE(list.ok()) << list.status().toString();
    AddrEntry e;
    ASSERT_TRUE(hasAddress(*list, vip, &e));
    EXPECT_EQ(e.prefix, 24);
    EXPECT_EQ(e.ifname, "va");
    EXPECT_EQ(e.ifindex, *va);
    EXPECT_TRUE(e.secondary());  // alias: 198.18.0.1 stays primary
    AddrEntry primary;
    ASSERT_TRUE(hasAddress(*list, ip("198.18.0.1"), &primary));
    EXPECT_FALSE(primary.secondary());

    Status again = addAddress(*va, vip, 24, VipPlacement::kAlias);
    EXPECT_EQ(again.code(), StatusCode::AlreadyExists);
    EXPECT_EQ(again.message(), "netlink RTM_NEWADDR 198.18.0.100/24 dev va: File exists");

    ASSERT_TRUE(deleteAddress(*va, vip, 24).ok());
    list = listAddresses(*va);
    ASSERT_TRUE(list.ok());
    EXPECT_FALSE(hasAddress(*list, vip));
    EXPECT_TRUE(hasAddress(*list, ip("198.18.0.1")));
    EXPECT_EQ(deleteAddress(*va, vip, 24).code(), StatusCode::NotFound);
  });
}

TEST_F(VipNetnsTest, AddListDeleteIpv6) {
  ns_.inside([] {
    auto va = interfaceIndex("va");
    ASSERT_TRUE(va.ok());
    const IpAddr vip = ip("fd00:198:18::100");
    ASSERT_TRUE(addAddress(*va, vip, 64, VipPlacement::kAlias).ok());
    auto list = listAddresses(*va);
    ASSERT_TRUE(list.ok());
    AddrEntry e;
    ASSERT_TRUE(hasAddress(*list, vip, &e));
    EXPECT_EQ(e.prefix, 64);
    EXPECT_EQ(e.address.family, AF_INET6);
    EXPECT_NE(e.flags & IFA_F_NODAD, 0u);
    EXPECT_EQ(e.flags & IFA_F_TENTATIVE, 0u);
    EXPECT_EQ(addAddress(*va, vip, 64, VipPlacement::kAlias).code(), StatusCode::AlreadyExists);
    ASSERT_TRUE(deleteAddress(*va, vip, 64).ok());
    list = listAddresses(*va);
    ASSERT_TRUE(list.ok());
    EXPECT_FALSE(hasAddress(*list, vip));
    EXPECT_TRUE(hasAddress(*list, ip("fd00:198:18::1")));
  });
}

TEST_F(VipNetnsTest, OneSideMakesVipThePreferredSource) {
  ns_.ip("addr add 198.18.0.7/24 dev va label va:7");
  EXPECT_EQ(routeSource(ns_, "198.18.0.50"), "198.18.0.1");
  ns_.inside([] {
    auto va = interfaceIndex("va");
    ASSERT_TRUE(va.ok());
    ASSERT_TRUE(addAddress(*va, ip("198.18.0.100"), 24, VipPlacement::kPrimary).ok());
    auto list = listAddresses(*va);
    ASSERT_TRUE(list.ok());
    std::vector<std::string> v4;
    for (const auto& e : *list) {
      if (e.address.family == AF_INET) {
        v4.push_back(e.address.toString() + (e.secondary() ? " secondary" : " primary"));
      }
    }
    // Original order kept behind the VIP.
    EXPECT_EQ(v4, (std::vector<std::string>{"198.18.0.100 primary", "198.18.0.1 secondary",
                                            "198.18.0.7 secondary"}));
    AddrEntry seven;
    ASSERT_TRUE(hasAddress(*list, ip("198.18.0.7"), &seven));
    EXPECT_EQ(seven.label, "va:7");
  });
  EXPECT_EQ(routeSource(ns_, "198.18.0.50"), "198.18.0.100");
  // Removing the one_side VIP keeps the physical addresses (the kernel would drop the secondaries
  // of a deleted primary when promote_secondaries is off).
  ns_.inside([] {
    auto va = interfaceIndex("va");
    ASSERT_TRUE(va.ok());
    ASSERT_TRUE(deleteAddress(*va, ip("198.18.0.100"), 24).ok());
    auto list = listAddresses(*va);
    ASSERT_TRUE(list.ok());
    EXPECT_FALSE(hasAddress(*list, ip("198.18.0.100")));
    EXPECT_TRUE(hasAddress(*list, ip("198.18.0.1")));
    EXPECT_TRUE(hasAddress(*list, ip("198.18.0.7")));
  });
  EXPECT_EQ(routeSource(ns_, "198.18.0.50"), "198.18.0.1");
  // Alias placement leaves the source alone.
  ns_.ip("addr del 198.18.0.7/24 dev va");
  ns_.inside([] {
    auto va = interfaceIndex("va");
    ASSERT_TRUE(va.ok());
    ASSERT_TRUE(addAddress(*va, ip("198.18.0.100"), 24, VipPlacement::kAlias).ok());
    EXPECT_EQ(addAddress(*va, ip("198.18.0.100"), 24, VipPlacement::kPrimary).code(),
              StatusCode::AlreadyExists);
  });
  EXPECT_EQ(routeSource(ns_, "198.18.0.50"), "198.18.0.1");
}

TEST_F(VipNetnsTest, OwnershipOnlyRemovesWhatHaloAdded) {
  // Qualified: sys::testutil (the netns helpers) hides halo::testutil inside halo::sys.
  halo::testutil::TempDir dir;
  const std::string state = dir.file("vip.json");
  ns_.inside([&] {
    VipOwner owner(state);
    // Pre-existing address: not added, not recorded, never removed.
    auto added = owner.addOwned("va", ip("198.18.0.1"), 24, VipPlacement::kAlias);
    ASSERT_TRUE(added.ok()) << added.status().toString();
    EXPECT_FALSE(*added);
    auto rec = owner.owned();
    ASSERT_TRUE(rec.ok());
    EXPECT_TRUE(rec->empty());
    EXPECT_TRUE(owner.removeOwned(ip("198.18.0.1")).ok());
    auto list = listAddresses();
    ASSERT_TRUE(list.ok());
    EXPECT_TRUE(hasAddress(*list, ip("198.18.0.1")));

    // Ours: recorded, then removed.
    added = owner.addOwned("va", ip("198.18.0.100"), 24, VipPlacement::kAlias);
    ASSERT_TRUE(added.ok()) << added.status().toString();
    EXPECT_TRUE(*added);
    rec = owner.owned();
    ASSERT_TRUE(rec.ok());
    ASSERT_EQ(rec->size(), 1u);
    EXPECT_EQ((*rec)[0], (OwnedAddress{ip("198.18.0.100"), 24, "va"}));
    EXPECT_TRUE(owner.removeOwned(ip("198.18.0.100")).ok());
    list = listAddresses();
    ASSERT_TRUE(list.ok());
    EXPECT_FALSE(hasAddress(*list, ip("198.18.0.100")));
    rec = owner.owned();
    ASSERT_TRUE(rec.ok());
    EXPECT_TRUE(rec->empty());

    // A failed add leaves no record.
    EXPECT_FALSE(owner.addOwned("nosuch0", ip("198.18.0.101"), 24, VipPlacement::kAlias).ok());
    auto bad = owner.addOwned("va", ip("198.18.0.102"), 99, VipPlacement::kAlias);
    EXPECT_EQ(bad.status().code(), StatusCode::InvalidArgument);
    rec = owner.owned();
    ASSERT_TRUE(rec.ok());
    EXPECT_TRUE(rec->empty());
  });
}

TEST_F(VipNetnsTest, CleanupLeftoversAfterCrash) {
  halo::testutil::TempDir dir;
  const std::string state = dir.file("vip.json");
  ns_.inside([&] {
    {
      VipOwner before_crash(state);
      auto a = before_crash.addOwned("va", ip("198.18.0.100"), 24, VipPlacement::kAlias);
      ASSERT_TRUE(a.ok() && *a);
      auto b = before_crash.addOwned("va", ip("fd00:198:18::100"), 64, VipPlacement::kAlias);
      ASSERT_TRUE(b.ok() && *b);
      auto c = before_crash.addOwned("vb", ip("198.18.1.100"), 24, VipPlacement::kAlias);
      ASSERT_TRUE(c.ok() && *c);
    }
    // Someone removed one of ours meanwhile; the rest is still there after the "crash".
    auto vb = interfaceIndex("vb");
    ASSERT_TRUE(vb.ok());
    ASSERT_TRUE(deleteAddress(*vb, ip("198.18.1.100"), 24).ok());

    VipOwner after_restart(state);
    auto rec = after_restart.owned();
    ASSERT_TRUE(rec.ok());
    EXPECT_EQ(rec->size(), 3u);
    ASSERT_TRUE(after_restart.cleanupLeftovers().ok());
    auto list = listAddresses();
    ASSERT_TRUE(list.ok());
    EXPECT_FALSE(hasAddress(*list, ip("198.18.0.100")));
    EXPECT_FALSE(hasAddress(*list, ip("fd00:198:18::100")));
    EXPECT_TRUE(hasAddress(*list, ip("198.18.0.1")));
    EXPECT_TRUE(hasAddress(*list, ip("198.18.1.2")));
    EXPECT_TRUE(hasAddress(*list, ip("fd00:198:18::1")));
    rec = after_restart.owned();
    ASSERT_TRUE(rec.ok());
    EXPECT_TRUE(rec->empty());
  });
  EXPECT_EQ(halo::testutil::readFile(state), "{\"addresses\":[]}\n");
}

TEST_F(VipNetnsTest, InterfaceAutoDetection) {
  ns_.inside([] {
    auto found = findInterfaceForVip(ip("198.18.0.100"), "");
    ASSERT_TRUE(found.ok()) << found.status().toString();
    EXPECT_EQ(found->ifname, "va");
    EXPECT_EQ(found->prefix, 24);
    found = findInterfaceForVip(ip("198.18.1.100"), "");
    ASSERT_TRUE(found.ok());
    EXPECT_EQ(found->ifname, "vb");
    found = findInterfaceForVip(ip("fd00:198:18::100"), "");
    ASSERT_TRUE(found.ok());
    EXPECT_EQ(found->ifname, "va");
    EXPECT_EQ(found->prefix, 64);
    found = findInterfaceForVip(ip("198.18.0.100"), "va");
    ASSERT_TRUE(found.ok());
    EXPECT_EQ(found->ifname, "va");
    // Named interface without that subnet, and a subnet nobody has.
    EXPECT_EQ(findInterfaceForVip(ip("198.18.0.100"), "vb").status().code(), StatusCode::NotFound);
    auto none = findInterfaceForVip(ip("198.18.5.5"), "");
    EXPECT_EQ(none.status().code(), StatusCode::NotFound);
    EXPECT_NE(none.status().message().find("198.18.5.5"), std::string::npos);
    EXPECT_EQ(interfaceIndex("nosuch0").status().code(), StatusCode::NotFound);
  });
}

TEST_F(VipNetnsTest, GratuitousArpReachesThePeer) {
  ns_.inside([] {
    auto va = interfaceIndex("va");
    auto vb = interfaceIndex("vb");
    ASSERT_TRUE(va.ok() && vb.ok());
    const IpAddr vip = ip("198.18.0.100");
    ASSERT_TRUE(addAddress(*va, vip, 24, VipPlacement::kAlias).ok());
    const int cap = captureSocket(*vb);
    ASSERT_GE(cap, 0) << std::strerror(errno);
    for (int i = 0; i < 3; ++i) {
      Status st = sendGratuitousArp(*va, vip);
      ASSERT_TRUE(st.ok()) << st.toString();
    }
    EXPECT_TRUE(waitForFrame(cap, [&vip](const uint8_t* f, size_t n) {
      if (n < 14 + 28 || f[12] != 0x08 || f[13] != 0x06) {
        return false;
      }
      const uint8_t* arp = f + 14;
      const bool broadcast = std::memcmp(f, "\xff\xff\xff\xff\xff\xff", 6) == 0;
      const bool request = arp[6] == 0 && arp[7] == ARPOP_REQUEST;
      return broadcast && request && std::memcmp(arp + 14, vip.bytes.data(), 4) == 0 &&
             std::memcmp(arp + 24, vip.bytes.data(), 4) == 0;
    }));
    ::close(cap);
    EXPECT_EQ(sendGratuitousArp(*va, ip("fd00::1")).code(), StatusCode::InvalidArgument);
  });
}

TEST_F(VipNetnsTest, UnsolicitedNaReachesThePeer) {
  ns_.inside([] {
    auto va = interfaceIndex("va");
    auto vb = interfaceIndex("vb");
    ASSERT_TRUE(va.ok() && vb.ok());
    const IpAddr vip = ip("fd00:198:18::100");
    ASSERT_TRUE(addAddress(*va, vip, 64, VipPlacement::kAlias).ok());
    const int cap = captureSocket(*vb);
    ASSERT_GE(cap, 0) << std::strerror(errno);
    for (int i = 0; i < 3; ++i) {
      Status st = sendUnsolicitedNa(*va, vip);
      ASSERT_TRUE(st.ok()) << st.toString();
    }
    const IpAddr all_nodes = ip("ff02::1");
    EXPECT_TRUE(waitForFrame(cap, [&](const uint8_t* f, size_t n) {
      if (n < 14 + 40 + 24 || f[12] != 0x86 || f[13] != 0xdd) {
        return false;
      }
      const auto* ip6 = reinterpret_cast<const ip6_hdr*>(f + 14);
      const uint8_t* icmp = f + 14 + 40;
      return ip6->ip6_nxt == IPPROTO_ICMPV6 && ip6->ip6_hlim == 255 &&
             std::memcmp(&ip6->ip6_dst, all_nodes.bytes.data(), 16) == 0 &&
             std::memcmp(&ip6->ip6_src, vip.bytes.data(), 16) == 0 &&
             icmp[0] == ND_NEIGHBOR_ADVERT && (icmp[4] & 0x20) != 0 &&  // override
             std::memcmp(icmp + 8, vip.bytes.data(), 16) == 0;
    }));
    ::close(cap);
  });
}

TEST_F(VipNetnsTest, TcpResetClosesConnectionsToTheVip) {
  ns_.inside([] {
    auto va = interfaceIndex("va");
    ASSERT_TRUE(va.ok());
    const IpAddr vip = ip("198.18.0.100");
    ASSERT_TRUE(addAddress(*va, vip, 24, VipPlacement::kAlias).ok());

    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(18080);
    std::memcpy(&addr.sin_addr, vip.bytes.data(), 4);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    ASSERT_EQ(::listen(listener, 4), 0);

    // The client uses the physical address, so only the server side has the VIP as local address.
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(client, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, "198.18.0.1", &from.sin_addr);
    ASSERT_EQ(::bind(client, reinterpret_cast<sockaddr*>(&from), sizeof(from)), 0);
    ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    const int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(server, 0);

    auto report = resetTcpConnections(vip);
    ASSERT_TRUE(report.ok()) << report.status().toString();
    EXPECT_EQ(report->found, 1);
    EXPECT_EQ(report->destroyed, 1);
    EXPECT_TRUE(report->warning.empty()) << report->warning;

    ASSERT_NO_FATAL_FAILURE(expectConnectionClosed(client));
    // The accepted socket was aborted locally.
    EXPECT_LT(::send(server, "x", 1, MSG_NOSIGNAL), 0);

    // The listener is kept: a new connection still works.
    const int client2 = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(client2, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(client2);
    ::close(server);
    ::close(client);
    ::close(listener);

    // Nothing left: a second pass finds nothing.
    report = resetTcpConnections(vip);
    ASSERT_TRUE(report.ok());
    EXPECT_EQ(report->found, 0);
  });
}

TEST_F(VipNetnsTest, LinkUpDownDetection) {
  auto state = [this](const std::string& name) {
    Result<LinkState> out = notFound("not run");
    ns_.inside([&] {
      auto idx = interfaceIndex(name);
      ASSERT_TRUE(idx.ok());
      out = linkState(*idx);
    });
    return out;
  };
  // veth carrier follows the peer; give the kernel a moment to settle each change.
  auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); };
  settle();
  auto s = state("va");
  ASSERT_TRUE(s.ok()) << s.status().toString();
  EXPECT_EQ(s->name, "va");
  EXPECT_TRUE(s->up);
  EXPECT_TRUE(s->running);
  ns_.ip("link set vb down");
  settle();
  s = state("va");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->up);
  EXPECT_FALSE(s->running);
  ns_.ip("link set va down");
  settle();
  s = state("va");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->up);
  EXPECT_FALSE(s->running);
  ns_.ip("link set va up");
  ns_.ip("link set vb up");
  settle();
  s = state("va");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->up && s->running);
  ns_.inside([] { EXPECT_EQ(linkState(987654).status().code(), StatusCode::NotFound); });
}

}  // namespace
}  // namespace halo::sys
