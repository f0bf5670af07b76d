// The replication link over real TCP on the loopback of a private network namespace (created by
// this test binary), applying into a real temporary directory: the listener's checks, sessions of
// one and several connections, acknowledgements, answers, timeouts, TLS.

#include "rfs/stream_link.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "sys/netns_test_util.h"

namespace halo::rfs {
namespace {

class PrivateNetwork : public ::testing::Environment {
 public:
  void SetUp() override {
    if (unshare(CLONE_NEWNET) != 0) {
      GTEST_SKIP() << "needs root (unshare CLONE_NEWNET)";
    }
    ASSERT_TRUE(sys::testutil::bringLoopbackUp());
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PrivateNetwork);

constexpr int kPort = 5640;

bool waitUntil(const std::function<bool()>& done, int ms) {
  for (int i = 0; i < ms / 10; ++i) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

Op writeOp(const std::string& path, const std::string& data, uint64_t offset = 0) {
  Op op;
  op.type = OpType::Write;
  op.path = path;
  op.data = data;
  op.offset = offset;
  return op;
}

Op createOp(const std::string& path) {
  Op op;
  op.type = OpType::Create;
  op.path = path;
  op.mode = S_IFREG | 0644;
  return op;
}

class StreamLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/halo-stream.XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = templ;
    auto a = Applier::open(dir_);
    ASSERT_TRUE(a.ok()) << a.status().message();
    applier_ = std::move(*a);
    options_.module_id = 7;
    options_.send_timeout = Millis(3000);
    options_.connect_timeout = Millis(2000);
  }
  void TearDown() override {
    sender_.reset();
    receiver_.reset();
    listener_.reset();
    applier_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // The primary's listener on 127.0.0.1, expecting its peer at `peer`; accepted connections of
  // a replication session start a sender once all of them are there.
  void listen(const std::string& peer = "127.0.0.2") {
    auto l = LinkListener::listen("127.0.0.1", kPort, peer, options_,
                                  [this](AcceptedConnection& c) -> std::optional<std::string> {
                                    if (refuse_) {
                                      return std::string("not now");
                                    }
                                    std::lock_guard<std::mutex> lock(mutex_);
                                    channels_.push_back(std::move(c.channel));
                                    if (channels_.size() == c.hello.count) {
                                      StreamSender::Events ev;
                                      ev.need = [this](NeedRanges n) {
                                        std::lock_guard<std::mutex> l2(mutex_);
                                        needs_.push_back(std::move(n));
                                        cv_.notify_all();
                                      };
                                      ev.lost = [this](const std::string& why) {
                                        std::lock_guard<std::mutex> l2(mutex_);
                                        lost_ = why;
                                        cv_.notify_all();
                                      };
                                      Answer a;
                                      a.accepted = true;
                                      a.module_id = 7;
                                      a.first_seq = 1;
                                      sender_ = StreamSender::start(std::move(channels_), 1,
                                                                    options_, time_, std::move(ev),
                                                                    encodeAnswer(a));
                                      cv_.notify_all();
                                    }
                                    return std::nullopt;
                                  });
    ASSERT_TRUE(l.ok()) << l.status().message();
    listener_ = std::move(*l);
  }

  Result<ConnectedSession> connect(uint8_t count = 1, uint16_t module_id = 7,
                                   const std::string& from = "127.0.0.2") {
    Hello h;
    h.module_id = module_id;
    h.session = 42;
    h.count = count;
    return connectSession(from, "127.0.0.1", kPort, h, options_);
  }

  void startReceiver(ConnectedSession s) {
    StreamReceiver::Events ev;
    ev.ended = [this](const std::string& why, bool) {
      std::lock_guard<std::mutex> lock(mutex_);
      ended_ = why;
      cv_.notify_all();
    };
    receiver_ = StreamReceiver::start(std::move(s.channels), s.first_seq, {applier_.get()},
                                      options_, std::move(ev));
    std::unique_lock<std::mutex> lock(mutex_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(5), [this] { return sender_ != nullptr; }));
  }

  void send(Op op) {
    op.seq = next_seq_++;
    sender_->send(op);
  }

  // A session of one connection whose first record, the creation of "f", is acknowledged: the
  // link is idle and answered, so a record that is not held is written at once.
  void startWithFile() {
    listen();
    auto s = connect();
    ASSERT_TRUE(s.ok()) << s.status().message();
    startReceiver(std::move(*s));
    Op create = createOp("f");
    create.seq = next_seq_++;
    sender_->send(create, AckWait::Now);
    ASSERT_TRUE(sender_->waitAcked(create.seq)) << lost_ << ended_;
  }

  std::string read(const std::string& rel) {
    std::ifstream in(dir_ + "/" + rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  RealTimeSource time_;
  LinkOptions options_;
  std::string dir_;
  std::unique_ptr<Applier> applier_;
  std::unique_ptr<LinkListener> listener_;
  std::unique_ptr<StreamSender> sender_;
  std::unique_ptr<StreamReceiver> receiver_;
  uint64_t next_seq_ = 1;
  bool refuse_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<NeedRanges> needs_;
  std::string lost_;
  std::string ended_;
};

TEST_F(StreamLinkTest, OneConnectionAppliesInOrderAndAcknowledges) {
  listen();
  auto s = connect();
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->first_seq, 1u);
  startReceiver(std::move(*s));
  send(createOp("f"));
  for (int i = 0; i < 100; ++i) {
    send(writeOp("f", std::to_string(i % 10), static_cast<uint64_t>(i)));
  }
  ASSERT_TRUE(sender_->waitAcked(101));
  EXPECT_EQ(receiver_->applied(), 101u);
  EXPECT_EQ(read("f").size(), 100u);
  EXPECT_EQ(read("f").substr(0, 12), "012345678901");
}

// The secondary acknowledges unasked only every 64 records or after idle_ack (ten minutes
// here): a wait gets its acknowledgement within send_timeout (3 s) only by asking for it.
TEST_F(StreamLinkTest, AWaitAsksForItsAcknowledgement) {
  options_.idle_ack = Millis(600000);
  listen();
  auto s = connect();
  ASSERT_TRUE(s.ok()) << s.status().message();
  startReceiver(std::move(*s));
  send(createOp("f"));
  send(writeOp("f", "abc"));
  ASSERT_TRUE(sender_->waitAcked(2)) << lost_ << ended_;
  // Asked after the record was applied: answered at once too.
  send(writeOp("f", "d", 3));
  ASSERT_TRUE(waitUntil([&] { return receiver_->applied() == 3; }, 3000));
  ASSERT_TRUE(sender_->waitAcked(3)) << lost_ << ended_;
  EXPECT_EQ(read("f"), "abcd");
}

// A record sent with its ack request (a namespace operation's): the wait asks nothing more.
TEST_F(StreamLinkTest, ARecordMayCarryItsAckRequest) {
  options_.idle_ack = Millis(600000);
  listen();
  auto s = connect();
  ASSERT_TRUE(s.ok()) << s.status().message();
  startReceiver(std::move(*s));
  for (int i = 0; i < 3; ++i) {
    Op op = createOp("f" + std::to_string(i));
    op.seq = next_seq_++;
    sender_->send(op, AckWait::Now);
    ASSERT_TRUE(sender_->waitAcked(op.seq)) << i << " " << lost_ << ended_;
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/f" + std::to_string(i)));
  }
}

TEST_F(StreamLinkTest, AnAckRequestMayOvertakeItsRecord) {
  options_.idle_ack = Millis(600000);
  listen();
  auto s = connect(4);
  ASSERT_TRUE(s.ok()) << s.status().message();
  startReceiver(std::move(*s));
  send(createOp("f"));
  for (int round = 0; round < 20; ++round) {
    // A large record goes through the queue to any connection; the request right behind it
    // may arrive first on another one.
    send(writeOp("f", std::string(300 * 1024, static_cast<char>('a' + round))));
    ASSERT_TRUE(sender_->waitAcked(next_seq_ - 1)) << round << " " << lost_ << ended_;
    ASSERT_EQ(read("f")[0], static_cast<char>('a' + round));
  }
}

// The application's small records that no one waits for are held (LinkOptions::cork: ten
// minutes here) and go with the next record someone waits for, in one system call.
TEST_F(StreamLinkTest, SmallRecordsGoWithTheNextWaitedOne) {
  options_.cork = Millis(600000);
  startWithFile();
  const uint64_t sent = sender_->bytesSent();
  send(writeOp("f", "abc"));
  send(writeOp("f", "d", 3));
  EXPECT_EQ(sender_->bytesSent(), sent);  // corked: nothing written yet
  ASSERT_TRUE(sender_->waitAcked(next_seq_ - 1)) << lost_ << ended_;
  EXPECT_GT(sender_->bytesSent(), sent);
  EXPECT_EQ(read("f"), "abcd");
  // Neither an Fsync, which is waited for, nor a big write is held.
  Op fsync;
  fsync.type = OpType::Fsync;
  fsync.path = "f";
  const uint64_t before_fsync = sender_->bytesSent();
  send(fsync);
  EXPECT_GT(sender_->bytesSent(), before_fsync);
  const uint64_t before_big = sender_->bytesSent();
  send(writeOp("f", std::string(64 * 1024, 'x'), 4));
  EXPECT_GT(sender_->bytesSent(), before_big);
  ASSERT_TRUE(waitUntil([&] { return receiver_->applied() == next_seq_ - 1; }, 3000));
}

// A write-back that the next fsync will wait for (AckWait::Later) is held like the records no
// one waits for and goes with that fsync's record: one acknowledgement for all of them. Waited
// for alone, it goes at once, not after the cork time.
TEST_F(StreamLinkTest, ARecordWaitedForLaterGoesWithTheNextOne) {
  options_.cork = Millis(600000);
  startWithFile();
  const uint64_t sent = sender_->bytesSent();
  const uint64_t acks = sender_->acksReceived();
  Op back = writeOp("f", "abc");
  back.seq = next_seq_++;
  sender_->send(back, AckWait::Later);
  send(writeOp("f", "d", 3));  // like the times the kernel flushes before an fsync
  EXPECT_EQ(sender_->bytesSent(), sent);
  Op fsync;
  fsync.type = OpType::Fsync;
  fsync.path = "f";
  send(fsync);
  ASSERT_TRUE(sender_->waitAcked(next_seq_ - 1)) << lost_ << ended_;
  EXPECT_EQ(read("f"), "abcd");
  EXPECT_EQ(sender_->acksReceived(), acks + 1) << "one for the write-back, one for the fsync";

  Op alone = writeOp("f", "e", 4);
  alone.seq = next_seq_++;
  const uint64_t before = sender_->bytesSent();
  sender_->send(alone, AckWait::Later);
  EXPECT_EQ(sender_->bytesSent(), before);
  ASSERT_TRUE(sender_->waitAcked(alone.seq)) << lost_ << ended_;  // else lost at sendtimeout
  EXPECT_EQ(read("f"), "abcde");
}

// Each of the link's threads says what it is (`top -H`, `perf`, /proc/PID/task/*/comm).
TEST_F(StreamLinkTest, ItsThreadsAreNamed) {
  startWithFile();
  std::set<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  for (const char* name : {"rfs-listen", "rfs-send", "rfs-acks", "rfs-recv"}) {
    EXPECT_EQ(names.count(name), 1u) << name;
  }
}

// With no record anyone waits for after it, a held record still goes within the cork time.
TEST_F(StreamLinkTest, AHeldRecordGoesWithinTheCorkTime) {
  options_.cork = Millis(300);  // long enough that the check right after send() sees it held
  startWithFile();
  const uint64_t sent = sender_->bytesSent();
  send(writeOp("f", "late"));
  EXPECT_EQ(sender_->bytesSent(), sent);
  ASSERT_TRUE(waitUntil([&] { return receiver_->applied() == 2; }, 3000)) << lost_ << ended_;
  EXPECT_EQ(read("f"), "late");
}

TEST_F(StreamLinkTest, SeveralConnectionsKeepTheOrder) {
  listen();
  auto s = connect(4);
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_EQ(s->channels.size(), 4u);
  startReceiver(std::move(*s));
  send(createOp("big"));
  // Overlapping writes: only the stream order gives the right final content.
  const std::string chunk(200 * 1024, 'a');
  for (int i = 0; i < 64; ++i) {
    send(writeOp("big", std::string(200 * 1024, static_cast<char>('a' + i % 26)),
                 static_cast<uint64_t>(i) * 100 * 1024));
  }
  ASSERT_TRUE(sender_->waitAcked(65)) << lost_ << ended_;
  const std::string content = read("big");
  ASSERT_EQ(content.size(), 63u * 100 * 1024 + 200 * 1024);
  for (int i = 0; i < 64; ++i) {
    ASSERT_EQ(content[static_cast<size_t>(i) * 100 * 1024], static_cast<char>('a' + i % 26)) << i;
  }
}

TEST_F(StreamLinkTest, OnlyThePeerMayConnect) {
  listen("127.0.0.9");
  auto s = connect();
  EXPECT_FALSE(s.ok());
  ASSERT_TRUE(waitUntil([&] { return listener_->refused() > 0; }, 2000));
  EXPECT_NE(listener_->lastRefusal().find("only the peer 127.0.0.9 may connect"), std::string::npos)
      << listener_->lastRefusal();
}

TEST_F(StreamLinkTest, RefusalsComeBackWithTheirReason) {
  listen();
  auto s = connect(1, 8);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("module id 8, not 7"), std::string::npos)
      << s.status().message();
  refuse_ = true;
  s = connect();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not now"), std::string::npos) << s.status().message();
}

TEST_F(StreamLinkTest, NeedAnswersReachThePrimary) {
  listen();
  auto s = connect();
  ASSERT_TRUE(s.ok());
  startReceiver(std::move(*s));
  ASSERT_EQ(::system(("printf 0123456789 > " + dir_ + "/f").c_str()), 0);
  Op sync;
  sync.type = OpType::SyncFile;
  sync.path = "f";
  sync.mode = S_IFREG | 0600;
  sync.length = 10;
  send(sync);
  Op verify;  // a digest of nothing: the block differs
  verify.type = OpType::VerifyBlocks;
  verify.path = "f";
  verify.length = 16;
  verify.data = std::string(16, '\0');
  send(verify);
  std::unique_lock<std::mutex> lock(mutex_);
  ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(5), [this] { return needs_.size() >= 2; }));
  EXPECT_EQ(needs_[0].path, "f");
  EXPECT_EQ(needs_[0].seq, 1u);
  EXPECT_TRUE(needs_[0].ranges.empty());  // SyncFile: answered, nothing to send for it
  EXPECT_EQ(needs_[1].seq, 2u);
  ASSERT_EQ(needs_[1].ranges.size(), 1u);
  EXPECT_EQ(needs_[1].ranges[0], std::make_pair(uint64_t{0}, uint64_t{16}));
}

TEST_F(StreamLinkTest, AFailedApplyEndsTheSessionOnBothSides) {
  listen();
  auto s = connect();
  ASSERT_TRUE(s.ok());
  startReceiver(std::move(*s));
  send(writeOp("missing/f", "x"));  // not tolerant: the parent does not exist
  std::unique_lock<std::mutex> lock(mutex_);
  ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(5),
                           [this] { return !lost_.empty() && !ended_.empty(); }));
  EXPECT_NE(ended_.find("cannot apply"), std::string::npos) << ended_;
  EXPECT_NE(lost_.find("the secondary gave up"), std::string::npos) << lost_;
  lock.unlock();
  EXPECT_FALSE(sender_->waitAcked(1));
}

TEST_F(StreamLinkTest, SilenceOfTheSecondaryIsASendTimeout) {
  options_.send_timeout = Millis(500);
  listen();
  auto s = connect();
  ASSERT_TRUE(s.ok());
  // The secondary's connections stay open but nobody reads or acknowledges.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  send(createOp("f"));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(sender_->waitAcked(1));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(450));
  EXPECT_LT(waited, std::chrono::seconds(3));
  EXPECT_NE(sender_->lostReason().find("sendtimeout"), std::string::npos) << sender_->lostReason();
}

TEST_F(StreamLinkTest, TlsSession) {
  auto id = makeTlsIdentity("halo-module-test");
  ASSERT_TRUE(id.ok()) << id.status().message();
  options_.tls = *id;
  listen();
  auto s = connect(2);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_STREQ(s->channels[0]->kind(), "tls");
  startReceiver(std::move(*s));
  send(createOp("secret"));
  for (uint64_t i = 0; i < 3; ++i) {
    send(writeOp("secret", std::string(kMaxData, 's'), i * kMaxData));
  }
  ASSERT_TRUE(sender_->waitAcked(4)) << lost_;
  EXPECT_EQ(read("secret").size(), 3u << 20);
}

TEST_F(StreamLinkTest, TlsRefusesAnotherModuleCertificate) {
  auto mine = makeTlsIdentity("halo-module-a");
  auto other = makeTlsIdentity("halo-module-b");
  ASSERT_TRUE(mine.ok() && other.ok());
  options_.tls = *mine;
  listen();
  LinkOptions theirs = options_;
  theirs.tls = *other;
  Hello h;
  h.module_id = 7;
  h.session = 1;
  auto s = connectSession("127.0.0.2", "127.0.0.1", kPort, h, theirs);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("another module certificate"), std::string::npos)
      << s.status().message();
}

}  // namespace
}  // namespace halo::rfs
