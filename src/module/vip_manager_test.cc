// VipManager against a real kernel. Each test creates two network namespaces, halo-vm<pid>-N: the
// node (veth end va: 198.18.0.1/24, fd00:198:18::1/64) and its peer (vb: 198.18.0.2/24,
// fd00:198:18::2/64). RAII guards delete them even when a test fails, and namespaces left by dead
// earlier runs are deleted at suite start. The manager runs on threads that setns() into the node
// namespace; the root namespace is never touched. Needs root (skipped otherwise).

#include "module/vip_manager.h"

#include <arpa/inet.h>
#include <netinet/icmp6.h>
#include <netinet/ip6.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "sys/netlink_addr.h"
#include "sys/netns_test_util.h"
#include "sys/test_temp_dir.h"
#include "sys/vip_owner.h"

namespace halo::module {
namespace {

using sys::testutil::captureSocket;
using sys::testutil::expectConnectionClosed;
using sys::testutil::hasAddress;
using sys::testutil::ip;
using sys::testutil::NetnsGuard;

constexpr const char* kNsPrefix = "halo-vm";

config::VirtualAddrConfig vaddr(const std::string& addr,
                                config::VipWhere where = config::VipWhere::OneSideAlias,
                                const std::string& netmask = "", int line = 10) {
  config::VirtualAddrConfig a;
  a.addr = addr;
  a.where = where;
  a.netmask = netmask;
  a.line = line;
  return a;
}

config::VipConfig vipConfig(std::vector<config::VirtualAddrConfig> addrs,
                            const std::string& ifname = "") {
  config::InterfaceConfig intf;
  intf.name = ifname;
  intf.addrs = std::move(addrs);
  config::VipConfig vip;
  vip.interfaces.push_back(std::move(intf));
  return vip;
}

struct LogLine {
  bool error;
  std::string message;
};

// A gratuitous ARP for `vip`: ARP with sender IP = vip.
bool isGarp(const uint8_t* f, size_t n, const sys::IpAddr& vip) {
  return n >= 14 + 28 && f[12] == 0x08 && f[13] == 0x06 &&
         std::memcmp(f + 14 + 14, vip.bytes.data(), 4) == 0;
}

// An unsolicited neighbour advertisement from `vip` for `vip`.
bool isNa(const uint8_t* f, size_t n, const sys::IpAddr& vip) {
  if (n < 14 + 40 + 24 || f[12] != 0x86 || f[13] != 0xdd) {
    return false;
  }
  const auto* ip6 = reinterpret_cast<const ip6_hdr*>(f + 14);
  const uint8_t* icmp = f + 14 + 40;
  return ip6->ip6_nxt == IPPROTO_ICMPV6 && icmp[0] == ND_NEIGHBOR_ADVERT &&
         std::memcmp(&ip6->ip6_src, vip.bytes.data(), 16) == 0 &&
         std::memcmp(icmp + 8, vip.bytes.data(), 16) == 0;
}

class VipManagerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { sys::testutil::removeStaleNamespaces(kNsPrefix); }

  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root";
    }
    ASSERT_TRUE(node_.created() && peer_.created());
    node_.ip("link set lo up");
    peer_.ip("link set lo up");
    node_.ip("link add va type veth peer name vb netns " + peer_.name());
    node_.ip("addr add 198.18.0.1/24 dev va");
    node_.ip("addr add fd00:198:18::1/64 dev va nodad");
    peer_.ip("addr add 198.18.0.2/24 dev vb");
    peer_.ip("addr add fd00:198:18::2/64 dev vb nodad");
    node_.ip("link set va up");
    peer_.ip("link set vb up");
    auto loop = sys::EventLoop::create(time_);
    ASSERT_TRUE(loop.ok()) << loop.status().toString();
    loop_ = std::move(loop).value();
  }

  std::unique_ptr<VipManager> makeManager(const config::VipConfig& cfg) {
    auto m =
        VipManager::create(cfg, state_, *loop_, [this](bool error, const std::string& message) {
          log_.push_back({error, message});
        });
    EXPECT_TRUE(m.ok()) << m.status().toString();
    return m.ok() ? std::move(m).value() : nullptr;
  }

  // Index of the first log line containing `text` (and of that severity), -1 when none.
  int logIndex(const std::string& text, bool error) const {
    for (size_t i = 0; i < log_.size(); ++i) {
      if (log_[i].error == error && log_[i].message.find(text) != std::string::npos) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  std::string logText() const {
    std::string out;
    for (const auto& l : log_) {
      out += (l.error ? "E " : "I ") + l.message + "\n";
    }
    return out;
  }

  std::vector<sys::AddrEntry> nodeAddresses() {
    std::vector<sys::AddrEntry> out;
    node_.inside([&] {
      auto list = sys::listAddresses();
      ASSERT_TRUE(list.ok()) << list.status().toString();
      out = *list;
    });
    return out;
  }

  // Runs the loop on a node-namespace thread until `done` returns true after a frame captured on
  // the peer's vb, or `bound` passes. `on_frame` sees every captured frame.
  void runLoopCapturing(Millis bound, const std::function<bool(const uint8_t*, size_t)>& on_frame) {
    int cap = -1;
    peer_.inside([&] {
      auto vb = sys::interfaceIndex("vb");
      ASSERT_TRUE(vb.ok());
      cap = captureSocket(*vb, SOCK_NONBLOCK);  // read from the event loop
    });
    ASSERT_GE(cap, 0) << std::strerror(errno);
    auto watch = loop_->watchReadable(cap, [&] {
      uint8_t buf[2048];
      ssize_t n;
      while ((n = ::recv(cap, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        if (on_frame(buf, static_cast<size_t>(n))) {
          loop_->exit();
        }
      }
    });
    ASSERT_TRUE(watch.ok());
    loop_->addTimer(bound, [&] { loop_->exit(); });
    node_.inside([&] {
      Status st = loop_->run();
      EXPECT_TRUE(st.ok()) << st.toString();
    });
    loop_->unwatch(*watch);
    ::close(cap);
  }

  NetnsGuard node_{kNsPrefix};
  NetnsGuard peer_{kNsPrefix};
  testutil::TempDir dir_;
  const std::string state_ = dir_.file("vip.json");
  RealTimeSource time_;
  std::unique_ptr<sys::EventLoop> loop_;  // declared before managers: it must outlive them
  std::vector<LogLine> log_;
};

TEST_F(VipManagerTest, AddsAliasAndIpv6AndLeavesPreexistingAddress) {
  node_.ip("addr add 198.18.0.50/24 dev va");
  auto mgr = makeManager(
      vipConfig({vaddr("198.18.0.100"), vaddr("fd00:198:18::100"), vaddr("198.18.0.50")}));
  ASSERT_NE(mgr, nullptr);
  EXPECT_FALSE(mgr->added());
  node_.inside([&] {
    const nlohmann::json before = mgr->describe();
    ASSERT_EQ(before.size(), 3u);
    EXPECT_EQ(before[0]["addr"], "198.18.0.100");
    EXPECT_EQ(before[0]["interface"], "");
    EXPECT_TRUE(before[0]["prefix"].is_null());
    EXPECT_EQ(before[0]["present"], false);
    EXPECT_EQ(before[2]["present"], true);
    EXPECT_EQ(before[2]["owned"], false);
    Status st = mgr->add();
    EXPECT_TRUE(st.ok()) << st.toString();
  });
  EXPECT_TRUE(mgr->added());

  auto list = nodeAddresses();
  sys::AddrEntry v4;
  ASSERT_TRUE(hasAddress(list, ip("198.18.0.100"), &v4));
  EXPECT_EQ(v4.ifname, "va");
  EXPECT_EQ(v4.prefix, 24);
  EXPECT_TRUE(v4.secondary());  // one_side_alias: 198.18.0.1 stays primary
  sys::AddrEntry v6;
  ASSERT_TRUE(hasAddress(list, ip("fd00:198:18::100"), &v6));
  EXPECT_EQ(v6.ifname, "va");
  EXPECT_EQ(v6.prefix, 64);
  EXPECT_GE(logIndex("Virtual IP 198.18.0.100 added on va", false), 0) << logText();
  EXPECT_GE(logIndex("Virtual IP fd00:198:18::100 added on va", false), 0) << logText();
  EXPECT_GE(logIndex("198.18.0.50 already present on va, not owned", true), 0) << logText();
  EXPECT_LT(logIndex("198.18.0.50 added", false), 0) << logText();

  node_.inside([&] {
    const nlohmann::json after = mgr->describe();
    ASSERT_EQ(after.size(), 3u);
    EXPECT_EQ(after[0], (nlohmann::json{{"addr", "198.18.0.100"},
                                        {"interface", "va"},
                                        {"prefix", 24},
                                        {"present", true},
                                        {"owned", true}}));
    EXPECT_EQ(after[1]["prefix"], 64);
    EXPECT_EQ(after[1]["owned"], true);
    EXPECT_EQ(after[2]["present"], true);
    EXPECT_EQ(after[2]["owned"], false);
  });

  node_.inside([&] {
    Status st = mgr->remove();
    EXPECT_TRUE(st.ok()) << st.toString();
  });
  EXPECT_FALSE(mgr->added());
  list = nodeAddresses();
  EXPECT_FALSE(hasAddress(list, ip("198.18.0.100")));
  EXPECT_FALSE(hasAddress(list, ip("fd00:198:18::100")));
  EXPECT_TRUE(hasAddress(list, ip("198.18.0.50")));  // not ours: left in place
  EXPECT_TRUE(hasAddress(list, ip("198.18.0.1")));
  EXPECT_TRUE(hasAddress(list, ip("fd00:198:18::1")));
  EXPECT_GE(logIndex("Virtual IP 198.18.0.100 removed from va", false), 0) << logText();
  EXPECT_GE(logIndex("Virtual IP fd00:198:18::100 removed from va", false), 0) << logText();
  EXPECT_LT(logIndex("198.18.0.50 removed", false), 0) << logText();

  // Idempotent: nothing left to do, nothing logged.
  const size_t lines = log_.size();
  node_.inside([&] { EXPECT_TRUE(mgr->remove().ok()); });
  EXPECT_EQ(log_.size(), lines) << logText();
  auto owned = sys::VipOwner(state_).owned();
  ASSERT_TRUE(owned.ok());
  EXPECT_TRUE(owned->empty());
}

TEST_F(VipManagerTest, OneSideMakesVipThePrimaryAddress) {
  auto mgr = makeManager(vipConfig({vaddr("198.18.0.100", config::VipWhere::OneSide)}));
  ASSERT_NE(mgr, nullptr);
  auto v4Order = [this] {
    std::vector<std::string> out;
    for (const auto& e : nodeAddresses()) {
      if (e.ifname == "va" && e.address.family == AF_INET) {
        out.push_back(e.address.toString() + (e.secondary() ? " secondary" : " primary"));
      }
    }
    return out;
  };
  node_.inside([&] {
    Status st = mgr->add();
    EXPECT_TRUE(st.ok()) << st.toString();
  });
  EXPECT_EQ(v4Order(), (std::vector<std::string>{"198.18.0.100 primary", "198.18.0.1 secondary"}));
  node_.inside([&] {
    Status st = mgr->remove();
    EXPECT_TRUE(st.ok()) << st.toString();
  });
  EXPECT_EQ(v4Order(), (std::vector<std::string>{"198.18.0.1 primary"}));
}

TEST_F(VipManagerTest, AnnouncesAtOnceAndRepeatsToThePeer) {
  const sys::IpAddr v4 = ip("198.18.0.100");
  const sys::IpAddr v6 = ip("fd00:198:18::100");
  auto mgr = makeManager(vipConfig({vaddr("198.18.0.100"), vaddr("fd00:198:18::100")}));
  ASSERT_NE(mgr, nullptr);
  int garps = 0;
  int nas = 0;
  // Capture is set up before add() so the immediate announcement is seen too: the socket exists
  // before add() runs (on the loop, first thing).
  loop_->post([&] {
    Status st = mgr->add();
    EXPECT_TRUE(st.ok()) << st.toString();
  });
  // At once, +100 ms, +300 ms, +1 s: four of each well within 3 s.
  runLoopCapturing(Millis(3000), [&](const uint8_t* f, size_t n) {
    garps += isGarp(f, n, v4) ? 1 : 0;
    nas += isNa(f, n, v6) ? 1 : 0;
    return garps >= 4 && nas >= 4;
  });
  EXPECT_EQ(garps, 4);
  EXPECT_EQ(nas, 4);
  node_.inside([&] { EXPECT_TRUE(mgr->remove().ok()); });
}

TEST_F(VipManagerTest, RemoveCancelsAnnouncements) {
  const sys::IpAddr v4 = ip("198.18.0.100");
  auto mgr = makeManager(vipConfig({vaddr("198.18.0.100")}));
  ASSERT_NE(mgr, nullptr);
  int garps = 0;
  loop_->post([&] {
    EXPECT_TRUE(mgr->add().ok());
    EXPECT_TRUE(mgr->remove().ok());
  });
  // Absence cannot be awaited: watch long enough for the +100 ms and +300 ms repeats.
  runLoopCapturing(Millis(600), [&](const uint8_t* f, size_t n) {
    garps += isGarp(f, n, v4) ? 1 : 0;
    return false;
  });
  EXPECT_EQ(garps, 1);
}

TEST_F(VipManagerTest, ArpRerouteRepeatsEveryIntervalDuringElapse) {
  const sys::IpAddr v4 = ip("198.18.0.100");
  config::VipConfig cfg = vipConfig({vaddr("198.18.0.100")});
  cfg.interfaces[0].arpreroute = true;
  cfg.interfaces[0].arpinterval = Millis(200);
  cfg.interfaces[0].arpelapse = Millis(500);
  auto mgr = makeManager(cfg);
  ASSERT_NE(mgr, nullptr);
  int garps = 0;
  loop_->post([&] { EXPECT_TRUE(mgr->add().ok()); });
  // Burst at 0, 100, 300 ms; reroute at 200 and 400 ms (600 would be past arpelapse); the
  // burst's +1 s comes after the window.
  runLoopCapturing(Millis(850), [&](const uint8_t* f, size_t n) {
    garps += isGarp(f, n, v4) ? 1 : 0;
    return false;
  });
  EXPECT_EQ(garps, 5);
  node_.inside([&] { EXPECT_TRUE(mgr->remove().ok()); });
}

TEST_F(VipManagerTest, CleanupLeftoversAfterCrash) {
  const config::VipConfig cfg = vipConfig({vaddr("198.18.0.100"), vaddr("fd00:198:18::100")});
  {
    auto crashed = makeManager(cfg);
    ASSERT_NE(crashed, nullptr);
    node_.inside([&] { EXPECT_TRUE(crashed->add().ok()); });
  }  // destroyed without remove(): the addresses stay, as after a crash
  auto list = nodeAddresses();
  EXPECT_TRUE(hasAddress(list, ip("198.18.0.100")));
  EXPECT_TRUE(hasAddress(list, ip("fd00:198:18::100")));

  log_.clear();
  auto restarted = makeManager(cfg);
  ASSERT_NE(restarted, nullptr);
  node_.inside([&] {
    Status st = restarted->cleanupLeftovers();
    EXPECT_TRUE(st.ok()) << st.toString();
  });
  list = nodeAddresses();
  EXPECT_FALSE(hasAddress(list, ip("198.18.0.100")));
  EXPECT_FALSE(hasAddress(list, ip("fd00:198:18::100")));
  EXPECT_TRUE(hasAddress(list, ip("198.18.0.1")));
  EXPECT_TRUE(hasAddress(list, ip("fd00:198:18::1")));
  EXPECT_GE(logIndex("Virtual IP 198.18.0.100 left by an earlier run removed from va", false), 0)
      << logText();
  EXPECT_GE(logIndex("Virtual IP fd00:198:18::100 left by an earlier run removed from va", false),
            0)
      << logText();
  auto owned = sys::VipOwner(state_).owned();
  ASSERT_TRUE(owned.ok());
  EXPECT_TRUE(owned->empty());
  // Nothing recorded any more: a second cleanup is a no-op.
  const size_t lines = log_.size();
  node_.inside([&] { EXPECT_TRUE(restarted->cleanupLeftovers().ok()); });
  EXPECT_EQ(log_.size(), lines);
}

TEST_F(VipManagerTest, TcpResetOnRemove) {
  auto mgr = makeManager(vipConfig({vaddr("198.18.0.100")}));
  ASSERT_NE(mgr, nullptr);
  int listener = -1;
  node_.inside([&] {
    ASSERT_TRUE(mgr->add().ok());
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  });
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(18080);
  ::inet_pton(AF_INET, "198.18.0.100", &addr.sin_addr);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
  ASSERT_EQ(::listen(listener, 4), 0);

  // The client is in the peer namespace; the handshake completes in the listener's backlog.
  int client = -1;
  peer_.inside([&] {
    client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(client, 0);
    ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
  });
  ASSERT_GE(client, 0);
  const int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server, 0) << std::strerror(errno);

  node_.inside([&] {
    Status st = mgr->remove();
    EXPECT_TRUE(st.ok()) << st.toString();
  });
  EXPECT_GE(
      logIndex("tcpreset of Virtual IP 198.18.0.100: 1 TCP connection(s) found, 1 reset", false), 0)
      << logText();
  ASSERT_NO_FATAL_FAILURE(expectConnectionClosed(client));
  EXPECT_FALSE(hasAddress(nodeAddresses(), ip("198.18.0.100")));
  ::close(server);
  ::close(client);
  ::close(listener);
}

TEST_F(VipManagerTest, VipOutsideEverySubnetNeedsANamedInterface) {
  auto mgr = makeManager(vipConfig({vaddr("198.18.7.7"), vaddr("198.18.0.100")}));
  ASSERT_NE(mgr, nullptr);
  node_.inside([&] {
    Status st = mgr->add();
    EXPECT_EQ(st.code(), StatusCode::NotFound) << st.toString();
    EXPECT_NE(st.message().find("198.18.7.7"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("no interface has a subnet"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("<interface name="), std::string::npos) << st.message();
  });
  EXPECT_GE(logIndex("Virtual IP 198.18.7.7 not added: no interface has a subnet", true), 0)
      << logText();
  // The first error does not stop the others.
  EXPECT_TRUE(hasAddress(nodeAddresses(), ip("198.18.0.100")));
  EXPECT_TRUE(mgr->added());
  node_.inside([&] { EXPECT_TRUE(mgr->remove().ok()); });
  EXPECT_FALSE(hasAddress(nodeAddresses(), ip("198.18.0.100")));
  mgr.reset();

  // The fix: name the interface (a host address), or name it and give the netmask.
  auto named = makeManager(vipConfig(
      {vaddr("198.18.7.7"), vaddr("198.18.9.9", config::VipWhere::OneSideAlias, "255.255.255.0")},
      "va"));
  ASSERT_NE(named, nullptr);
  node_.inside([&] {
    Status st = named->add();
    EXPECT_TRUE(st.ok()) << st.toString();
  });
  auto list = nodeAddresses();
  sys::AddrEntry e;
  ASSERT_TRUE(hasAddress(list, ip("198.18.7.7"), &e));
  EXPECT_EQ(e.ifname, "va");
  EXPECT_EQ(e.prefix, 32);
  ASSERT_TRUE(hasAddress(list, ip("198.18.9.9"), &e));
  EXPECT_EQ(e.prefix, 24);
  node_.inside([&] { EXPECT_TRUE(named->remove().ok()); });
  list = nodeAddresses();
  EXPECT_FALSE(hasAddress(list, ip("198.18.7.7")));
  EXPECT_FALSE(hasAddress(list, ip("198.18.9.9")));

  // A named interface that does not exist.
  auto missing = makeManager(vipConfig({vaddr("198.18.0.100")}, "nosuch0"));
  ASSERT_NE(missing, nullptr);
  node_.inside([&] {
    Status st = missing->add();
    EXPECT_EQ(st.code(), StatusCode::NotFound);
    EXPECT_NE(st.message().find("interface 'nosuch0' of VIP 198.18.0.100 (line 10) does not exist"),
              std::string::npos)
        << st.message();
  });
}

TEST_F(VipManagerTest, HostNameIsResolvedAtCreate) {
  // "localhost" resolves without DNS (/etc/hosts); nothing is added, only described.
  auto mgr = makeManager(vipConfig({vaddr("localhost")}));
  ASSERT_NE(mgr, nullptr);
  node_.inside([&] {
    const nlohmann::json d = mgr->describe();
    ASSERT_EQ(d.size(), 1u);
    const std::string addr = d[0]["addr"];
    EXPECT_TRUE(addr == "127.0.0.1" || addr == "::1") << addr;
  });
}

// Configuration errors found by create(): no kernel access, so no namespace.
TEST(VipManagerCreateTest, RefusesBadInputs) {
  RealTimeSource time;
  auto loop = sys::EventLoop::create(time);
  ASSERT_TRUE(loop.ok());
  auto create = [&](const config::VirtualAddrConfig& a) {
    return VipManager::create(vipConfig({a}), "/nonexistent/vip.json", **loop,
                              [](bool, const std::string&) {});
  };
  auto refused = [&](const config::VirtualAddrConfig& a, const std::string& text) {
    auto m = create(a);
    ASSERT_FALSE(m.ok()) << a.addr << " " << a.netmask;
    EXPECT_EQ(m.status().code(), StatusCode::InvalidArgument);
    EXPECT_NE(m.status().message().find(text), std::string::npos) << m.status().message();
  };
  refused(vaddr("198.18.0.100", config::VipWhere::Alias, "", 7),
          "<virtual_addr addr=\"198.18.0.100\"> line 7: where=\"alias\" is a farm placement");
  refused(vaddr("198.18.0.100", config::VipWhere::OneSideAlias, "255.0.255.0"),
          "198.18.0.100\"> line 10: netmask \"255.0.255.0\" is not a netmask");
  refused(vaddr("198.18.0.100", config::VipWhere::OneSideAlias, "33"),
          "netmask \"33\" is not a prefix length of 1 to 32 for 198.18.0.100");
  refused(vaddr("198.18.0.100", config::VipWhere::OneSideAlias, "24x"),
          "netmask \"24x\" is neither a dotted netmask nor a prefix length");
  refused(vaddr("fd00:198:18::100", config::VipWhere::OneSideAlias, "255.255.255.0"),
          "IPv6 VIP fd00:198:18::100 needs a prefix length");
  refused(vaddr("198.18.0.300"), "198.18.0.300 is not a valid IPv4 or IPv6 address");
  refused(vaddr("fd00:198:18::zz"), "fd00:198:18::zz is not a valid IPv4 or IPv6 address");

  // A duplicate after resolution.
  auto dup =
      VipManager::create(vipConfig({vaddr("198.18.0.100", config::VipWhere::OneSideAlias, "", 3),
                                    vaddr("198.18.0.100", config::VipWhere::OneSide, "", 4)}),
                         "/nonexistent/vip.json", **loop, [](bool, const std::string&) {});
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("line 4: 198.18.0.100 is already a VIP at line 3"),
            std::string::npos)
      << dup.status().message();

  EXPECT_TRUE(create(vaddr("198.18.0.100", config::VipWhere::OneSide, "255.255.254.0")).ok());
  EXPECT_TRUE(create(vaddr("fd00:198:18::100", config::VipWhere::OneSideAlias, "64")).ok());
}

}  // namespace
}  // namespace halo::module
