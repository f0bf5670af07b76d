#pragma once
// The fixture of the replication tests (replication_test.cc, fast_resync_test.cc): the primary's
// service (FUSE over the "primary" directory, the hub, the listener) and the secondary's (applier
// on the "secondary" directory), each with its journal, talking over a real TCP link on
// loopback. The test binary lives in its own mount and network namespaces (created first), so
// neither the mount nor the traffic is visible to the rest of the machine.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "rfs/service.h"
#include "rfs/tree_diff.h"
#include "sys/netns_test_util.h"

namespace halo::rfs::fixture {

class PrivateNamespaces : public ::testing::Environment {
 public:
  void SetUp() override {
    if (unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) {
      GTEST_SKIP() << "needs root (unshare)";
    }
    // Mounts made here stay here.
    mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    ASSERT_TRUE(sys::testutil::bringLoopbackUp());
  }
};
inline const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PrivateNamespaces);

inline int sh(const std::string& command) { return std::system(command.c_str()); }

// Collects a service's events; waits for one of a kind.
class Events {
 public:
  EventSink sink() {
    return [this](const ServiceEvent& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      seen_.push_back(e.kind + ": " + e.message);
      cv_.notify_all();
    };
  }
  bool waitFor(const std::string& kind, std::chrono::seconds limit = std::chrono::seconds(60)) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, limit, [&] {
      for (const auto& s : seen_) {
        if (s.rfind(kind + ":", 0) == 0) {
          return true;
        }
      }
      return false;
    });
  }
  bool seen(const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& s : seen_) {
      if (s.find(text) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    seen_.clear();
  }
  std::string all() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string out;
    for (const auto& s : seen_) {
      out += s + "\n";
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> seen_;
};

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/halo-repl.XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    tmp_ = templ;
    primary_ = tmp_ + "/primary";
    secondary_ = tmp_ + "/secondary";
    std::filesystem::create_directories(primary_);
    std::filesystem::create_directories(secondary_);
  }

  void TearDown() override {
    secondary_service_.reset();
    if (primary_service_) {
      (void)primary_service_->stop();
    }
    primary_service_.reset();
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }

  ServiceOptions options(const std::string& dir, const std::string& local,
                         const std::string& peer) {
    ServiceOptions o;
    ReplicatedDir d;
    d.dir = dir;
    d.replicated = replicated_;
    o.dirs.push_back(d);
    o.link.module_id = 1;
    o.link.send_timeout = Millis(20000);
    o.local_addr = local;
    o.peer_addr = peer;
    o.port = 5620;  // the listener sets SO_REUSEADDR: each test can bind it again
    o.resync.threads = 4;
    o.resync.block_size = 64 * 1024;
    o.resync.bandwidth_kib_per_s = bandwidth_kib_s_;
    o.connections = connections_;
    o.journal = tmp_ + (dir == primary_ ? "/primary.db" : "/secondary.db");
    o.activity_log = tmp_ + (dir == primary_ ? "/primary-al.db" : "/secondary-al.db");
    // The trees are made just before the services start: only what is born after counts.
    o.activity_grace = Millis(50);
    o.random = [this] {
      std::lock_guard<std::mutex> lock(random_mutex_);
      return random_();
    };
    return o;
  }

  void startPrimary() {
    auto p = PrimaryService::start(options(primary_, "127.0.0.1", "127.0.0.2"), time_,
                                   primary_events_.sink());
    ASSERT_TRUE(p.ok()) << p.status().message();
    primary_service_ = std::move(*p);
  }

  // The secondary joins and reintegrates; returns once both sides report it done.
  void startSecondary() {
    auto s = SecondaryService::start(options(secondary_, "127.0.0.2", "127.0.0.1"), time_,
                                     secondary_events_.sink());
    ASSERT_TRUE(s.ok()) << s.status().message();
    secondary_service_ = std::move(*s);
  }

  void waitSynced() {
    ASSERT_TRUE(secondary_events_.waitFor("synced")) << secondary_events_.all();
    ASSERT_TRUE(primary_events_.waitFor("synced")) << primary_events_.all();
  }

  void startPair() {
    startPrimary();
    startSecondary();
    waitSynced();
  }

  // Ends the workload: everything written is flushed through the mount and acknowledged, then
  // the mount goes away and both trees are compared.
  void expectIdenticalTrees() {
    ASSERT_EQ(sh("sync -f '" + primary_ + "'"), 0);
    EXPECT_TRUE(primary_service_->status().value("synced", false))
        << primary_events_.all() << secondary_events_.all();
    ASSERT_TRUE(primary_service_->stop().ok());
    secondary_service_.reset();
    WalkOptions w;
    w.block_size = 64 * 1024;
    w.include = replicated_;
    auto p = walkTree(primary_, w);
    auto s = walkTree(secondary_, w);
    ASSERT_TRUE(p.ok()) << p.status().message();
    ASSERT_TRUE(s.ok()) << s.status().message();
    DiffOptions d;
    auto diffs = diffTrees(p->manifest, s->manifest, d);
    ASSERT_TRUE(diffs.ok()) << diffs.status().message();
    std::string listed;
    for (size_t i = 0; i < diffs->size() && i < 20; ++i) {
      listed += describeDiff((*diffs)[i]) + "\n";
    }
    EXPECT_TRUE(diffs->empty()) << diffs->size() << " differences, first:\n"
                                << listed << primary_events_.all() << secondary_events_.all();
  }

  RealTimeSource time_;
  std::string tmp_;
  std::string primary_;
  std::string secondary_;
  PathFilter replicated_;
  unsigned connections_ = 1;
  uint64_t bandwidth_kib_s_ = 0;
  Events primary_events_;
  Events secondary_events_;
  std::unique_ptr<PrimaryService> primary_service_;
  std::unique_ptr<SecondaryService> secondary_service_;
  std::mutex random_mutex_;
  std::mt19937_64 random_{20261206};
};

}  // namespace halo::rfs::fixture
