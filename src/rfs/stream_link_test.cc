// The replication link over a real TCP connection on the loopback of a private network namespace
// (created by this test binary), applying into a real temporary directory.

#include "rfs/stream_link.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sys/netns_test_util.h"

namespace halo::rfs {
namespace {

// Moves the whole test binary into its own network namespace with loopback up, so the link's
// traffic never leaves namespaces this test created.
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

class StreamLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/halo-stream.XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = templ;
    auto a = Applier::open(dir_);
    ASSERT_TRUE(a.ok()) << a.status().message();
    applier_ = std::move(*a);
  }
  void TearDown() override {
    sender_.reset();
    receiver_.reset();
    applier_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void connect(int port) {
    auto r = StreamReceiver::listen({"127.0.0.1", port, 7}, *applier_);
    ASSERT_TRUE(r.ok()) << r.status().message();
    receiver_ = std::move(*r);
    auto s = StreamSender::connect({"127.0.0.1", port, 7, Millis(5000), Millis(2000)}, time_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    sender_ = std::move(*s);
  }
  std::string read(const std::string& rel) {
    std::ifstream in(dir_ + "/" + rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  RealTimeSource time_;
  std::string dir_;
  std::unique_ptr<Applier> applier_;
  std::unique_ptr<StreamReceiver> receiver_;
  std::unique_ptr<StreamSender> sender_;
};

Op op(OpType t, std::string path) {
  Op o;
  o.type = t;
  o.path = std::move(path);
  return o;
}

TEST_F(StreamLinkTest, OperationsAreAppliedInOrderAndAcknowledged) {
  connect(5600);
  Op mkdir = op(OpType::Mkdir, "d");
  mkdir.mode = 0755;
  sender_->submit(mkdir);
  Op create = op(OpType::Create, "d/f");
  create.mode = S_IFREG | 0644;
  sender_->submit(create);
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    Op w = op(OpType::Write, "d/f");
    w.offset = static_cast<uint64_t>(i) * 10;
    w.data = std::string(10, static_cast<char>('a' + i % 26));
    last = sender_->submit(w);
  }
  sender_->waitAcked(last);
  EXPECT_FALSE(sender_->lost()) << sender_->lostReason();
  EXPECT_GE(sender_->acked(), last);
  EXPECT_EQ(receiver_->applied(), last);
  const std::string content = read("d/f");
  ASSERT_EQ(content.size(), 1000u);
  EXPECT_EQ(content.substr(990), std::string(10, static_cast<char>('a' + 99 % 26)));
}

TEST_F(StreamLinkTest, ABadOperationClosesTheLinkAndTheSenderGoesOnAlone) {
  connect(5601);
  Op w = op(OpType::Write, "missing/file");  // the peer cannot apply it
  w.data = "x";
  const uint64_t seq = sender_->submit(w);
  sender_->waitAcked(seq);  // returns: the link is lost, the application does not hang
  ASSERT_TRUE(sender_->lost());
  EXPECT_FALSE(sender_->lostReason().empty());
  EXPECT_NE(receiver_->lastError().find("missing/file"), std::string::npos)
      << receiver_->lastError();
  // Later operations are dropped (the peer is out of date) and never wait.
  Op more = op(OpType::Mkdir, "later");
  more.mode = 0755;
  sender_->waitAcked(sender_->submit(more));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/later"));
}

TEST_F(StreamLinkTest, ANewSenderContinuesTheSequence) {
  connect(5602);
  Op mkdir = op(OpType::Mkdir, "one");
  mkdir.mode = 0700;
  sender_->waitAcked(sender_->submit(mkdir));
  sender_.reset();
  auto s = StreamSender::connect({"127.0.0.1", 5602, 7, Millis(5000), Millis(2000)}, time_);
  ASSERT_TRUE(s.ok()) << s.status().message();
  sender_ = std::move(*s);
  Op again = op(OpType::Mkdir, "two");
  again.mode = 0700;
  const uint64_t seq = sender_->submit(again);
  EXPECT_EQ(seq, 2u);
  sender_->waitAcked(seq);
  EXPECT_FALSE(sender_->lost()) << sender_->lostReason();
  EXPECT_TRUE(std::filesystem::is_directory(dir_ + "/two"));
}

TEST_F(StreamLinkTest, AWrongModuleOrNoPeerIsRefusedAtConnect) {
  auto r = StreamReceiver::listen({"127.0.0.1", 5603, 7}, *applier_);
  ASSERT_TRUE(r.ok());
  receiver_ = std::move(*r);
  auto wrong = StreamSender::connect({"127.0.0.1", 5603, 8, Millis(1000), Millis(1000)}, time_);
  EXPECT_FALSE(wrong.ok());
  auto none = StreamSender::connect({"127.0.0.1", 5699, 7, Millis(1000), Millis(1000)}, time_);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("127.0.0.1:5699"), std::string::npos);
}

}  // namespace
}  // namespace halo::rfs
