// Replication between two real nodes: halo-rfs primary in n1 (its FUSE mount lives in n1's mount
// namespace), halo-rfs secondary in n2, over the bridge between their network namespaces.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "harness/test_node.h"
#include "rfs/tree_diff.h"

namespace halo::test {
namespace {

using ::testing::HasSubstr;

class RfsNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lan_ = TestLan::create("sw");
    ASSERT_NE(lan_, nullptr) << "cannot create a network namespace (run as root)";
    n1_ = TestNode::create("n1");
    n2_ = TestNode::create("n2");
    ASSERT_TRUE(n1_ && n2_);
    ASSERT_TRUE(lan_->attach(*n1_, "eth0", "198.18.1.1/24"));
    ASSERT_TRUE(lan_->attach(*n2_, "eth0", "198.18.1.2/24"));
    for (TestNode* n : {n1_.get(), n2_.get()}) {
      std::string why;
      ASSERT_TRUE(n->startDaemon(&why)) << why;  // its mount namespace holds the FUSE mount
      std::filesystem::create_directories(n->root() + "/data");
    }
  }

  // Starts halo-rfs in the node's namespaces, in the background; its output goes to `log`.
  void start(const TestNode& n, const std::string& args, const std::string& log) {
    auto r = n.execMounted({"sh", "-c",
                            "setsid " + toolPath("halo-rfs") + " " + args + " > " + log +
                                " 2>&1 < /dev/null & echo $! > " + log + ".pid"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  bool logged(const TestNode& n, const std::string& log, const std::string& text) {
    return eventually([&] { return n.readFile(log).find(text) != std::string::npos; },
                      std::chrono::seconds(15));
  }
  void startPair(const std::string& extra_primary = "") {
    secondary_log_ = n2_->root() + "/rfs.log";
    primary_log_ = n1_->root() + "/rfs.log";
    start(*n2_,
          "secondary --dir " + n2_->root() +
              "/data --listen 198.18.1.2 --port 5600 "
              "--module-id 1",
          secondary_log_);
    ASSERT_TRUE(logged(*n2_, secondary_log_, "listening on 198.18.1.2:5600"))
        << n2_->readFile(secondary_log_);
    start(*n1_,
          "primary --dir " + n1_->root() +
              "/data --peer 198.18.1.2 --port 5600 "
              "--module-id 1 " +
              extra_primary,
          primary_log_);
    ASSERT_TRUE(logged(*n1_, primary_log_, "mounted")) << n1_->readFile(primary_log_);
    EXPECT_THAT(n1_->readFile(primary_log_), HasSubstr("link up to 198.18.1.2:5600"));
  }
  void stopPrimary() {
    ASSERT_TRUE(killPid(n1_->readPid(primary_log_ + ".pid"), SIGTERM));
    ASSERT_TRUE(logged(*n1_, primary_log_, "unmounted")) << n1_->readFile(primary_log_);
  }

  std::unique_ptr<TestLan> lan_;
  std::unique_ptr<TestNode> n1_;
  std::unique_ptr<TestNode> n2_;
  std::string primary_log_;
  std::string secondary_log_;
};

TEST_F(RfsNodesTest, WritesThroughThePrimaryReachTheSecondary) {
  startPair();
  const std::string data = n1_->root() + "/data";
  auto r = n1_->execMounted(
      {"sh", "-c",
       "set -e; tar -C /usr/include -cf " + n1_->root() + "/t.tar linux; tar -C " + data + " -xf " +
           n1_->root() + "/t.tar; cd " + data +
           "; for i in $(seq 1 50); do sqlite3 app.db \"CREATE TABLE IF NOT EXISTS t(v); "
           "INSERT INTO t VALUES($i);\"; done; mv linux kernel-headers; sync -f " +
           data});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The application saw FUSE in n1; the machine (and this test) sees the plain directories.
  EXPECT_EQ(
      n1_->execMounted({"sh", "-c", "grep -q ' " + data + " fuse' /proc/self/mounts"}).exit_code,
      0);
  stopPrimary();
  auto p = rfs::walkTree(data, {});
  auto s = rfs::walkTree(n2_->root() + "/data", {});
  ASSERT_TRUE(p.ok() && s.ok());
  auto diffs = rfs::diffTrees(p->manifest, s->manifest, {});
  ASSERT_TRUE(diffs.ok());
  EXPECT_TRUE(diffs->empty()) << diffs->size() << " differences, e.g. "
                              << (diffs->empty() ? "" : rfs::describeDiff(diffs->front()));
  EXPECT_GT(p->manifest.entries.size(), 100u);
}

TEST_F(RfsNodesTest, LosingTheSecondaryNeverFailsTheApplication) {
  startPair("--send-timeout 1000");
  const std::string data = n1_->root() + "/data";
  ASSERT_EQ(
      n1_->execMounted({"sh", "-c", "echo before > " + data + "/a && sync -f " + data}).exit_code,
      0);
  n2_->powerOff();  // the secondary's processes die and its link goes down
  // Every write and fsync still succeeds (the first ones wait at most the send timeout).
  auto r = n1_->execMounted({"sh", "-c",
                             "set -e; for i in $(seq 1 20); do echo $i > " + data +
                                 "/f$i; sync -f " + data + "; done; cat " + data + "/f20"},
                            std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("20"));
  EXPECT_TRUE(logged(*n1_, primary_log_, "link lost")) << n1_->readFile(primary_log_);
  stopPrimary();
  EXPECT_TRUE(std::filesystem::exists(n2_->root() + "/data/a"));
  EXPECT_FALSE(std::filesystem::exists(n2_->root() + "/data/f20"));
}

TEST_F(RfsNodesTest, BadArgumentsAreRefusedWithUsage) {
  auto r = n1_->exec({toolPath("halo-rfs"), "primary", "--dir", "/tmp"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--peer is required"));
  r = n1_->exec({toolPath("halo-rfs"), "secondary", "--dir", "/tmp", "--listen", "127.0.0.1",
                 "--port", "x", "--module-id", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("--port 'x' is not a number"));
}

}  // namespace
}  // namespace halo::test
