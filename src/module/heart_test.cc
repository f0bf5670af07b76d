// Heart against real sockets and threads. Before any test the binary moves itself into a network
// namespace of its own (unshare(CLONE_NEWNET)) and brings its loopback up, so every packet stays
// on a private lo: node A is 127.0.0.1, node B 127.0.0.2, a stranger 127.0.0.3, all on one port.
// Needs root (CAP_SYS_ADMIN); without it every test is skipped.
//
// The EventLoop can run only once (exit() is final), so each test is a list of steps, "wait until
// X (bounded), then do Y", driven by one run() and checked after every event.

#include "module/heart.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "proto/heartbeat_receiver.h"
#include "sys/netlink_addr.h"

namespace halo::module {
namespace {

constexpr uint16_t kModuleId = 7;
constexpr int kPort = 8888;
constexpr int kPort2 = 8889;
constexpr const char* kAddrA = "127.0.0.1";
constexpr const char* kAddrB = "127.0.0.2";
constexpr const char* kAddrStranger = "127.0.0.3";
constexpr std::string_view kKeyFile1 =
    "halo-module-key 1\n"
    "000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f\n";
constexpr std::string_view kKeyFile2 =
    "halo-module-key 1\n"
    "f00102030405060708090a0b0c0d0e0f"
    "f01112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f\n";

proto::ModuleKey key1() { return *proto::parseModuleKey(kKeyFile1); }
proto::ModuleKey key2() { return *proto::parseModuleKey(kKeyFile2); }

Status bringLoopbackUp() {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return errnoStatus("socket", errno);
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  Status status;
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
    status = errnoStatus("SIOCGIFFLAGS lo", errno);
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
      status = errnoStatus("SIOCSIFFLAGS lo", errno);
    }
  }
  close(fd);
  return status;
}

// Enters the private namespace once per process (SetUp runs again on --gtest_repeat).
class NetnsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (entered_) {
      return;
    }
    entered_ = true;
    if (unshare(CLONE_NEWNET) != 0) {
      status_ = errnoStatus("unshare(CLONE_NEWNET) (needs root)", errno);
      return;
    }
    status_ = bringLoopbackUp();
    if (!status_.ok()) {
      return;
    }
    // lo holds only ::1; a second IPv6 address lets two nodes talk over IPv6 (NODAD: usable now).
    auto lo = sys::interfaceIndex("lo");
    auto two = sys::IpAddr::parse("::2");
    ipv6_pair_ = lo.ok() && two.ok() ? sys::addAddress(*lo, *two, 128, sys::VipPlacement::kAlias)
                                     : internalError("no lo or ::2");
  }
  const Status& status() const { return status_; }
  const Status& ipv6Pair() const { return ipv6_pair_; }

 private:
  bool entered_ = false;
  Status status_ = internalError("not entered");
  Status ipv6_pair_ = internalError("not tried");
};

// Registered before main() runs the tests: gtest_main owns main().
NetnsEnvironment* const kNetns =
    static_cast<NetnsEnvironment*>(::testing::AddGlobalTestEnvironment(new NetnsEnvironment));

proto::Heartbeat message(const std::string& node, uint64_t generation) {
  proto::Heartbeat hb;
  hb.module_name = "mirror";
  hb.node_name = node;
  hb.main_state = core::MainState::Prim;
  hb.readiness = core::Readiness::Ready;
  hb.role_epoch = 3;
  hb.generation = generation;
  hb.uptodate = true;
  hb.resources = {{"heartbeat.lan1", ResourceState::Up}};
  return hb;
}

// What the sender stamps, cleared, so content can be compared.
proto::Heartbeat content(proto::Heartbeat hb) {
  hb.module_id = 0;
  hb.boot_id = 0;
  hb.sequence = 0;
  return hb;
}

HeartLink lan(const std::string& ident, const std::string& local, const std::string& peer, int port,
              Millis pulse, Millis timeout) {
  HeartLink l;
  l.ident = ident;
  l.local_addr = local;
  l.peer_addr = peer;
  l.port = port;
  l.pulse = pulse;
  l.timeout = timeout;
  return l;
}

HeartOptions options(const std::string& peer_node, std::vector<HeartLink> links,
                     std::optional<proto::ModuleKey> key = std::nullopt) {
  HeartOptions o;
  o.module_id = kModuleId;
  o.peer_node = peer_node;
  o.key = key;
  o.links = std::move(links);
  o.realtime = false;  // the realtime test opts in; mlockall would outlive a test
  return o;
}

// One node: its Heart and what its events recorded.
struct Node {
  std::unique_ptr<Heart> heart;
  std::vector<std::pair<std::string, proto::Heartbeat>> received;
  std::vector<std::string> log;  // "up lan1", "down lan1", "all_lost"
  int all_lost = 0;
  std::vector<std::string> warnings;
  int after_destruction = 0;  // callbacks that ran while heart was null
  int off_loop = 0;           // callbacks not on the test (loop) thread
  HeartLinkStats stats(size_t i = 0) const { return heart->stats().at(i); }
};

// A UDP socket that impersonates a peer.
class RawSender {
 public:
  explicit RawSender(const char* from) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, from, &a.sin_addr);
    ok_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~RawSender() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  bool ok() const { return ok_; }
  void send(const std::vector<uint8_t>& bytes, const char* to, int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, to, &a.sin_addr);
    EXPECT_EQ(
        sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)),
        static_cast<ssize_t>(bytes.size()));
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

class HeartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kNetns->status().ok()) {
      GTEST_SKIP() << "no private network namespace: " << kNetns->status().message();
    }
    auto loop = sys::EventLoop::create(time_);
    ASSERT_TRUE(loop.ok()) << loop.status().message();
    loop_ = std::move(*loop);
    loop_thread_ = std::this_thread::get_id();
  }

  void TearDown() override {
    for (Node* n : {&a_, &b_}) {
      n->heart.reset();
      EXPECT_EQ(n->after_destruction, 0) << "a callback ran after its Heart was destroyed";
      EXPECT_EQ(n->off_loop, 0) << "a callback ran off the loop thread";
    }
  }

  Heart::Events eventsFor(Node& n) {
    Heart::Events e;
    e.received = [this, &n](const std::string& ident, const proto::Heartbeat& hb) {
      check(n);
      n.received.emplace_back(ident, hb);
      poke();
    };
    e.link = [this, &n](const std::string& ident, bool up) {
      check(n);
      n.log.push_back((up ? "up " : "down ") + ident);
      poke();
    };
    e.all_lost = [this, &n] {
      check(n);
      ++n.all_lost;
      n.log.push_back("all_lost");
      poke();
    };
    e.warning = [this, &n](const std::string& m) {
      check(n);
      n.warnings.push_back(m);
      poke();
    };
    return e;
  }

  void check(Node& n) {
    if (!n.heart) {
      ++n.after_destruction;
    }
    if (std::this_thread::get_id() != loop_thread_) {
      ++n.off_loop;
    }
  }

  Result<std::unique_ptr<Heart>> startHeart(Node& n, HeartOptions o) {
    return Heart::start(std::move(o), *loop_, time_, eventsFor(n), proto::osRandomBytes);
  }

  // Starts n or fails the test; returns whether it started.
  bool start(Node& n, HeartOptions o) {
    auto h = startHeart(n, std::move(o));
    EXPECT_TRUE(h.ok()) << h.status().message();
    if (!h.ok()) {
      return false;
    }
    n.heart = std::move(*h);
    return true;
  }

  // A and B on one lan, A expecting node "b" and B node "a"; both with a message set.
  bool startPair(Millis pulse, Millis timeout, std::optional<proto::ModuleKey> key_a = {},
                 std::optional<proto::ModuleKey> key_b = {}) {
    if (!start(a_, options("b", {lan("lan1", kAddrA, kAddrB, kPort, pulse, timeout)}, key_a)) ||
        !start(b_, options("a", {lan("lan1", kAddrB, kAddrA, kPort, pulse, timeout)}, key_b))) {
      return false;
    }
    a_.heart->setMessage(message("a", 1));
    b_.heart->setMessage(message("b", 2));
    return true;
  }

  struct Step {
    std::string name;
    Millis limit;
    std::function<bool()> until;  // must become true within limit
    std::function<bool()> keep;   // or: must stay true for limit
    std::function<void()> then;
  };

  void waitFor(std::string name, Millis limit, std::function<bool()> until,
               std::function<void()> then = {}) {
    steps_.push_back({std::move(name), limit, std::move(until), {}, std::move(then)});
  }
  void holdFor(std::string name, Millis limit, std::function<bool()> keep,
               std::function<void()> then = {}) {
    steps_.push_back({std::move(name), limit, {}, std::move(keep), std::move(then)});
  }
  void act(std::function<void()> then) {
    waitFor(
        "act", Millis(0), [] { return true; }, std::move(then));
  }

  // Runs the loop through every step; a step that does not hold fails the test, naming it.
  void runSteps() {
    loop_->post([this] { enterStep(); });
    tick();
    loop_->addTimer(Millis(60000), [this] { fail("the whole test ran out of time"); });
    ASSERT_TRUE(loop_->run().ok());
    EXPECT_EQ(failure_, "");
  }

  // Time since the current step began.
  Millis stepElapsed() {
    return std::chrono::duration_cast<Millis>(time_.monotonicTime() - step_started_);
  }

  RealTimeSource time_;
  std::unique_ptr<sys::EventLoop> loop_;
  Node a_;
  Node b_;

 private:
  void enterStep() {
    if (done_) {
      return;
    }
    if (index_ >= steps_.size()) {
      done_ = true;
      loop_->exit();
      return;
    }
    step_started_ = time_.monotonicTime();
    step_timer_ = loop_->addTimer(steps_[index_].limit, [this] { onStepTimer(); });
    poke();
  }

  // Conditions on stats raise no event, so they are also checked on a short tick.
  void tick() {
    if (done_) {
      return;
    }
    poke();
    loop_->addTimer(Millis(5), [this] { tick(); });
  }

  void poke() {
    if (done_ || index_ >= steps_.size() || in_step_action_) {
      return;
    }
    Step& s = steps_[index_];
    if (s.until && s.until()) {
      advance();
    } else if (s.keep && !s.keep()) {
      fail("'" + s.name + "' stopped holding after " + std::to_string(stepElapsed().count()) +
           " ms");
    }
  }

  void onStepTimer() {
    if (done_) {
      return;
    }
    Step& s = steps_[index_];
    if (s.until) {
      if (s.until()) {
        advance();
      } else {
        fail("'" + s.name + "' did not happen within " + std::to_string(s.limit.count()) + " ms");
      }
    } else if (s.keep()) {
      advance();
    } else {
      fail("'" + s.name + "' did not hold");
    }
  }

  void advance() {
    loop_->cancelTimer(step_timer_);
    auto then = steps_[index_].then;
    ++index_;
    if (then) {
      in_step_action_ = true;
      then();
      in_step_action_ = false;
    }
    enterStep();
  }

  void fail(const std::string& why) {
    if (!done_) {
      failure_ = why;
      done_ = true;
      loop_->exit();
    }
  }

  std::thread::id loop_thread_;
  std::vector<Step> steps_;
  size_t index_ = 0;
  bool done_ = false;
  bool in_step_action_ = false;
  std::string failure_;
  MonotonicTime step_started_{};
  sys::EventLoop::Id step_timer_ = 0;
};

TEST_F(HeartTest, PeersExchangeAndDeliverTheOthersContent) {
  ASSERT_TRUE(startPair(Millis(20), Millis(500), key1(), key1()));
  waitFor("both deliver", Millis(2000),
          [&] { return !a_.received.empty() && !b_.received.empty(); });
  runSteps();
  ASSERT_FALSE(a_.received.empty());
  ASSERT_FALSE(b_.received.empty());
  EXPECT_EQ(a_.received[0].first, "lan1");
  EXPECT_EQ(content(a_.received[0].second), content(message("b", 2)));
  EXPECT_EQ(a_.received[0].second.module_id, kModuleId);
  EXPECT_GE(a_.received[0].second.sequence, 1u);
  EXPECT_EQ(content(b_.received[0].second), content(message("a", 1)));
  EXPECT_EQ(a_.log, std::vector<std::string>{"up lan1"});
  EXPECT_EQ(b_.log, std::vector<std::string>{"up lan1"});
  const HeartLinkStats s = a_.stats();
  EXPECT_EQ(s.ident, "lan1");
  EXPECT_TRUE(s.up);
  EXPECT_GE(s.packets.accepted, 1u);
  EXPECT_GE(s.sent, 1u);
  EXPECT_EQ(s.send_errors, 0u);
  EXPECT_EQ(s.wrong_source, 0u);
  EXPECT_EQ(s.wrong_node, 0u);
  EXPECT_EQ(s.packets.forged, 0u);
  EXPECT_TRUE(a_.warnings.empty());
}

TEST_F(HeartTest, UnchangedContentIsDeliveredOnceAndChangesAgain) {
  ASSERT_TRUE(startPair(Millis(20), Millis(500)));
  uint64_t accepted_before = 0;
  waitFor(
      "first delivery", Millis(2000), [&] { return a_.received.size() == 1; },
      [&] { accepted_before = a_.stats().packets.accepted; });
  holdFor(
      "no redelivery over ~10 pulses", Millis(220), [&] { return a_.received.size() == 1; },
      [&] {
        // The pulses did arrive: they just carried nothing new.
        EXPECT_GE(a_.stats().packets.accepted, accepted_before + 5);
        b_.heart->setMessage(message("b", 3));
      });
  waitFor("changed content delivered", Millis(1000), [&] { return a_.received.size() == 2; });
  holdFor("delivered once", Millis(100), [&] { return a_.received.size() == 2; });
  runSteps();
  ASSERT_EQ(a_.received.size(), 2u);
  EXPECT_EQ(a_.received[1].second.generation, 3u);
  EXPECT_GT(a_.received[1].second.sequence, a_.received[0].second.sequence);
  EXPECT_EQ(a_.received[1].second.boot_id, a_.received[0].second.boot_id);
}

TEST_F(HeartTest, SendNowDeliversFasterThanThePulse) {
  ASSERT_TRUE(startPair(Millis(2000), Millis(6000)));
  // The first packet leaves as soon as setMessage is called, not one pulse later.
  waitFor(
      "first delivery", Millis(1000), [&] { return a_.received.size() == 1; },
      [&] {
        b_.heart->setMessage(message("b", 5));
        b_.heart->sendNow();
      });
  waitFor("sendNow delivery", Millis(500), [&] { return a_.received.size() == 2; });
  runSteps();
  ASSERT_EQ(a_.received.size(), 2u);
  EXPECT_EQ(a_.received[1].second.generation, 5u);
}

TEST_F(HeartTest, PeerLossReportsLinkDownThenAllLostOncePerLoss) {
  constexpr Millis kPulse(50);
  constexpr Millis kTimeout(300);
  ASSERT_TRUE(startPair(kPulse, kTimeout));
  const HeartOptions b_options =
      options("a", {lan("lan1", kAddrB, kAddrA, kPort, kPulse, kTimeout)});
  MonotonicTime lost_at{};
  waitFor(
      "link up", Millis(2000), [&] { return a_.log.size() == 1; },
      [&] {
        b_.heart.reset();
        lost_at = time_.monotonicTime();
      });
  waitFor(
      "link down and all lost", kTimeout + Millis(700), [&] { return a_.all_lost == 1; },
      [&] {
        // The last packet left at most one pulse before B went.
        EXPECT_GE(time_.monotonicTime() - lost_at, kTimeout - kPulse - Millis(5));
      });
  holdFor(
      "all_lost fires once", Millis(400), [&] { return a_.all_lost == 1; },
      [&] { start(b_, b_options) && (b_.heart->setMessage(message("b", 2)), true); });
  waitFor(
      "link up again", Millis(2000), [&] { return a_.log.size() == 4; }, [&] { b_.heart.reset(); });
  waitFor("all lost again", kTimeout + Millis(700), [&] { return a_.all_lost == 2; });
  runSteps();
  EXPECT_EQ(a_.log, (std::vector<std::string>{"up lan1", "down lan1", "all_lost", "up lan1",
                                              "down lan1", "all_lost"}));
  // Link up again delivers the first packet again, though its content did not change.
  EXPECT_EQ(a_.received.size(), 2u);
}

TEST_F(HeartTest, AllLostFiresAtStartWhenNoPeerEverAnswersAndNothingIsSentWithoutMessage) {
  constexpr Millis kTimeout(200);
  const MonotonicTime started = time_.monotonicTime();
  ASSERT_TRUE(
      start(a_, options("b", {lan("lan1", kAddrA, kAddrB, kPort, Millis(20), kTimeout),
                              lan("lan2", kAddrA, kAddrB, kPort2, Millis(20), Millis(100))})));
  waitFor(
      "all lost", kTimeout + Millis(700), [&] { return a_.all_lost == 1; },
      [&] {
        // The largest timeout of all links counts, not the first to run out.
        EXPECT_GE(time_.monotonicTime() - started, kTimeout);
      });
  holdFor("fires once", Millis(300), [&] { return a_.all_lost == 1; });
  runSteps();
  EXPECT_EQ(a_.log, std::vector<std::string>{"all_lost"});
  EXPECT_EQ(a_.stats(0).sent, 0u);
  EXPECT_EQ(a_.stats(1).sent, 0u);
}

TEST_F(HeartTest, OneLinkUpIsEnoughAndForeignSourcesAreDropped) {
  constexpr Millis kTimeout(200);
  // A expects its lan2 peer at 127.0.0.3, but B sends from 127.0.0.2.
  ASSERT_TRUE(
      start(a_, options("b", {lan("lan1", kAddrA, kAddrB, kPort, Millis(20), kTimeout),
                              lan("lan2", kAddrA, kAddrStranger, kPort2, Millis(20), kTimeout)})));
  ASSERT_TRUE(start(b_, options("a", {lan("lan1", kAddrB, kAddrA, kPort, Millis(20), kTimeout),
                                      lan("lan2", kAddrB, kAddrA, kPort2, Millis(20), kTimeout)})));
  a_.heart->setMessage(message("a", 1));
  b_.heart->setMessage(message("b", 2));
  waitFor("lan1 up", Millis(2000), [&] { return a_.log.size() == 1; });
  holdFor("no all_lost while lan1 is up", kTimeout * 3, [&] { return a_.all_lost == 0; });
  runSteps();
  EXPECT_EQ(a_.log, std::vector<std::string>{"up lan1"});
  ASSERT_EQ(a_.received.size(), 1u);
  EXPECT_EQ(a_.received[0].first, "lan1");
  const HeartLinkStats lan2 = a_.stats(1);
  EXPECT_EQ(lan2.ident, "lan2");
  EXPECT_FALSE(lan2.up);
  EXPECT_GE(lan2.wrong_source, 5u);
  EXPECT_EQ(lan2.packets.accepted, 0u);
}

TEST_F(HeartTest, IPv6LinksBindAndExchange) {
  const int port = kPort;
  if (!kNetns->ipv6Pair().ok()) {
    // Without ::2 only the bind of ::1 can be checked.
    ASSERT_TRUE(
        start(a_, options("b", {lan("lan6", "::1", "::2", port, Millis(20), Millis(200))})));
    GTEST_SKIP() << "no ::2 on lo: " << kNetns->ipv6Pair().message();
  }
  ASSERT_TRUE(start(a_, options("b", {lan("lan6", "::1", "::2", port, Millis(20), Millis(500))})));
  ASSERT_TRUE(start(b_, options("a", {lan("lan6", "::2", "::1", port, Millis(20), Millis(500))})));
  a_.heart->setMessage(message("a", 1));
  b_.heart->setMessage(message("b", 2));
  waitFor("both deliver", Millis(2000),
          [&] { return !a_.received.empty() && !b_.received.empty(); });
  runSteps();
  ASSERT_FALSE(a_.received.empty());
  EXPECT_EQ(a_.received[0].first, "lan6");
  EXPECT_EQ(a_.received[0].second.node_name, "b");
}

TEST_F(HeartTest, WrongKeyIsCountedAsForgedAndNeverDelivered) {
  ASSERT_TRUE(startPair(Millis(20), Millis(200), key1(), key2()));
  waitFor("forged packets counted", Millis(2000),
          [&] { return a_.stats().packets.forged >= 3 && b_.stats().packets.forged >= 3; });
  runSteps();
  EXPECT_TRUE(a_.received.empty());
  EXPECT_TRUE(b_.received.empty());
  EXPECT_EQ(a_.stats().packets.accepted, 0u);
  EXPECT_FALSE(a_.stats().up);
}

TEST_F(HeartTest, KeyOnOneSideOnlyIsAKeyMismatch) {
  ASSERT_TRUE(startPair(Millis(20), Millis(200), key1(), std::nullopt));
  waitFor("mismatches counted", Millis(2000), [&] {
    return a_.stats().packets.key_mismatch >= 3 && b_.stats().packets.key_mismatch >= 3;
  });
  runSteps();
  EXPECT_TRUE(a_.received.empty());
  EXPECT_TRUE(b_.received.empty());
}

TEST_F(HeartTest, BadPacketsAreCountedByClassAndNeverDelivered) {
  // A alone, keyed, with no message (so it sends nothing); raw sockets play B and a stranger.
  ASSERT_TRUE(start(
      a_, options("b", {lan("lan1", kAddrA, kAddrB, kPort, Millis(20), Millis(5000))}, key1())));
  RawSender from_b(kAddrB);
  RawSender from_stranger(kAddrStranger);
  ASSERT_TRUE(from_b.ok());
  ASSERT_TRUE(from_stranger.ok());
  proto::HeartbeatSender sender(kModuleId, key1(), 42, proto::osRandomBytes);
  proto::HeartbeatSender foreign(99, key1(), 43, proto::osRandomBytes);

  act([&] {
    auto good = sender.next(message("b", 1));
    ASSERT_TRUE(good.ok());
    from_b.send(*good, kAddrA, kPort);                           // accepted and delivered
    from_b.send(*good, kAddrA, kPort);                           // the same bytes again: replayed
    from_b.send(std::vector<uint8_t>(64, 0x5a), kAddrA, kPort);  // garbage: bad magic
    from_b.send(std::vector<uint8_t>(good->begin(), good->begin() + 20), kAddrA, kPort);
    auto forged = sender.next(message("b", 9));
    ASSERT_TRUE(forged.ok());
    forged->back() ^= 0x01;
    from_b.send(*forged, kAddrA, kPort);
    auto wrong_node = sender.next(message("x", 9));
    ASSERT_TRUE(wrong_node.ok());
    from_b.send(*wrong_node, kAddrA, kPort);
    auto other_module = foreign.next(message("b", 9));
    ASSERT_TRUE(other_module.ok());
    from_b.send(*other_module, kAddrA, kPort);
    // Authentic but not a heartbeat.
    const std::vector<uint8_t> junk{1, 2, 3};
    const proto::ModuleKey key = key1();
    auto undecodable = proto::seal(&key, kModuleId, junk, proto::osRandomBytes);
    ASSERT_TRUE(undecodable.ok());
    from_b.send(*undecodable, kAddrA, kPort);
    auto plain = proto::encodeHeartbeat(message("b", 9));
    ASSERT_TRUE(plain.ok());
    auto clear = proto::seal(nullptr, kModuleId, *plain, proto::osRandomBytes);
    ASSERT_TRUE(clear.ok());
    from_b.send(*clear, kAddrA, kPort);
    auto fresh = sender.next(message("b", 9));
    ASSERT_TRUE(fresh.ok());
    from_stranger.send(*fresh, kAddrA, kPort);  // a valid packet from the wrong address
  });
  // Stats are published before posted events run on this loop: wait for both.
  waitFor("every packet counted", Millis(2000), [&] {
    if (a_.received.size() != 1 || a_.log.size() != 1) {
      return false;
    }
    const HeartLinkStats s = a_.stats();
    const proto::HeartbeatStats& p = s.packets;
    return p.replayed == 1 && p.bad_magic == 1 && p.truncated == 1 && p.forged == 1 &&
           p.foreign_module == 1 && p.malformed == 1 && p.key_mismatch == 1 && s.wrong_node == 1 &&
           s.wrong_source == 1;
  });
  holdFor("nothing else delivered", Millis(100), [&] { return a_.received.size() == 1; });
  runSteps();
  ASSERT_EQ(a_.received.size(), 1u);
  EXPECT_EQ(a_.received[0].second.node_name, "b");
  EXPECT_EQ(a_.received[0].second.generation, 1u);
  EXPECT_EQ(a_.log, std::vector<std::string>{"up lan1"});
  // Only the good packet: a wrong-node packet is refused before the replay window.
  EXPECT_EQ(a_.stats().packets.accepted, 1u);
  EXPECT_EQ(a_.stats().sent, 0u);
}

TEST_F(HeartTest, StartErrorsNameTheLink) {
  auto bad_bind = startHeart(
      a_,
      options("b", {lan("default", "198.18.5.5", "198.18.5.6", kPort, Millis(100), Millis(1000))}));
  ASSERT_FALSE(bad_bind.ok());
  EXPECT_EQ(bad_bind.status().message(),
            "heartbeat lan 'default': cannot bind 198.18.5.5:8888: Cannot assign requested "
            "address (is this address on this server?)");

  // The second lan fails after the first bound: its socket must be closed again.
  auto second = startHeart(
      a_,
      options("b", {lan("lan1", kAddrA, kAddrB, kPort, Millis(100), Millis(1000)),
                    lan("lan2", "198.18.5.5", "198.18.5.6", kPort2, Millis(100), Millis(1000))}));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("heartbeat lan 'lan2': cannot bind 198.18.5.5:8889"),
            std::string::npos)
      << second.status().message();

  auto v6 = startHeart(
      a_,
      options("b", {lan("lan6", "2001:db8::5", "2001:db8::6", kPort, Millis(100), Millis(1000))}));
  ASSERT_FALSE(v6.ok());
  EXPECT_NE(v6.status().message().find("cannot bind [2001:db8::5]:8888"), std::string::npos)
      << v6.status().message();

  auto literal = startHeart(
      a_, options("b", {lan("lan1", "node-a", kAddrB, kPort, Millis(100), Millis(1000))}));
  ASSERT_FALSE(literal.ok());
  EXPECT_EQ(literal.status().code(), StatusCode::InvalidArgument);
  EXPECT_EQ(literal.status().message(),
            "heartbeat lan 'lan1': local address: 'node-a' is not an IPv4 or IPv6 literal");

  auto families =
      startHeart(a_, options("b", {lan("lan1", kAddrA, "::1", kPort, Millis(100), Millis(1000))}));
  ASSERT_FALSE(families.ok());
  EXPECT_EQ(families.status().code(), StatusCode::InvalidArgument);

  auto timing = startHeart(
      a_, options("b", {lan("lan1", kAddrA, kAddrB, kPort, Millis(1000), Millis(1000))}));
  ASSERT_FALSE(timing.ok());
  EXPECT_EQ(timing.status().code(), StatusCode::InvalidArgument);

  auto none = startHeart(a_, options("b", {}));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::InvalidArgument);

  // Nothing half-started may call back.
  holdFor("no events", Millis(50), [&] { return a_.log.empty() && a_.warnings.empty(); });
  runSteps();
}

// The tid of the thread named `name` in this process, or 0.
pid_t findThread(const std::string& name) {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) {
    return 0;
  }
  pid_t found = 0;
  while (dirent* e = readdir(dir)) {
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string line;
    if (std::getline(comm, line) && line == name) {
      found = static_cast<pid_t>(std::atoi(e->d_name));
    }
  }
  closedir(dir);
  return found;
}

TEST_F(HeartTest, RealtimeThreadIsNamedAndRunsFifoOrWarns) {
  HeartOptions o = options("b", {lan("lan1", kAddrA, kAddrB, kPort, Millis(20), Millis(200))});
  o.realtime = true;
  ASSERT_TRUE(start(a_, std::move(o)));
  pid_t tid = 0;
  waitFor("thread named halo-heart", Millis(1000),
          [&] { return (tid = findThread("halo-heart")); });
  // Warnings, if any, are posted right at start.
  holdFor("settle", Millis(50), [] { return true; });
  runSteps();
  ASSERT_NE(tid, 0);
  const int policy = sched_getscheduler(tid);
  bool priority_warned = false;
  for (const std::string& w : a_.warnings) {
    const bool rt = w.rfind("real-time priority unavailable: ", 0) == 0;
    priority_warned = priority_warned || rt;
    EXPECT_TRUE(rt || w.rfind("memory lock unavailable: ", 0) == 0) << w;
  }
  if (policy == SCHED_FIFO) {
    sched_param param{};
    ASSERT_EQ(sched_getparam(tid, &param), 0);
    EXPECT_EQ(param.sched_priority, 10);
    EXPECT_FALSE(priority_warned);
  } else {
    EXPECT_TRUE(priority_warned) << "neither SCHED_FIFO nor a warning";
  }
  a_.heart.reset();
  munlockall();  // mlockall(MCL_FUTURE) would otherwise pin every later test's memory
}

TEST_F(HeartTest, NoCallbackRunsAfterDestruction) {
  ASSERT_TRUE(startPair(Millis(5), Millis(500)));
  waitFor(
      "link up", Millis(2000), [&] { return a_.log.size() == 1; },
      [&] {
        // Many changed messages in flight, so deliveries are likely queued when A goes.
        for (uint64_t g = 10; g < 60; ++g) {
          b_.heart->setMessage(message("b", g));
          b_.heart->sendNow();
        }
      });
  waitFor(
      "some changes delivered", Millis(1000), [&] { return a_.received.size() >= 2; },
      [&] { a_.heart.reset(); });
  holdFor("quiet after destruction", Millis(100), [&] { return a_.after_destruction == 0; });
  runSteps();
}

}  // namespace
}  // namespace halo::module
