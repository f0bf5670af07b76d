#include "rfs/activity_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "sys/sqlite.h"
#include "sys/test_temp_dir.h"

namespace halo::rfs {
namespace {

using Kind = ActivityLog::Kind;

ActivityLog::Key zone(std::string path, uint64_t z) { return {Kind::Zone, 0, std::move(path), z}; }

ActivityLog::Need needOf(std::vector<ActivityLog::Key> keys, uint64_t born = 0) {
  ActivityLog::Need n;
  n.keys = std::move(keys);
  n.born = born;
  return n;
}

class ActivityLogTest : public ::testing::Test {
 protected:
  std::unique_ptr<ActivityLog> open(size_t capacity = 4096) {
    ActivityLog::Options o;
    o.capacity = capacity;
    auto log = ActivityLog::open(dir_.path() + "/al.db", o, time_);
    EXPECT_TRUE(log.ok()) << log.status().message();
    return log.ok() ? std::move(*log) : nullptr;
  }
  testutil::TempDir dir_;
  RealTimeSource time_;
};

TEST_F(ActivityLogTest, WhatIsActivatedIsAdmittedAndSurvivesACrash) {
  {
    auto log = open();
    ASSERT_TRUE(log->reset().ok());
    const auto need = needOf({zone("db", 3), {Kind::Dir, 0, "d", 0}});
    EXPECT_FALSE(log->admit(need).has_value());
    ASSERT_TRUE(log->activate(need).ok());
    auto ticket = log->admit(need);
    ASSERT_TRUE(ticket.has_value());
    EXPECT_EQ(ticket->epoch(), 1u);
    ticket->setSeq(10);
    // Born in the current epoch: nothing more needed.
    EXPECT_TRUE(log->admit(needOf({zone("new", 0)}, 1)).has_value());
    EXPECT_FALSE(log->admit(needOf({zone("new", 0)}, 7)).has_value());
    // No reset, no clean end: as after a crash.
  }
  auto log = open();
  std::set<ActivityLog::Key> keys(log->recovered().keys.begin(), log->recovered().keys.end());
  EXPECT_EQ(keys, (std::set<ActivityLog::Key>{zone("db", 3), {Kind::Dir, 0, "d", 0}}));
  EXPECT_GT(log->recovered().oldest_start_us, 0);
  ASSERT_TRUE(log->reset().ok());
  EXPECT_TRUE(log->recovered().empty());
  auto again = open();
  EXPECT_TRUE(again->recovered().empty());
}

TEST_F(ActivityLogTest, AFullEpochGivesWayAndGoesOnceItsOperationsAreSafe) {
  auto log = open(2);
  ASSERT_TRUE(log->reset().ok());
  ASSERT_TRUE(log->activate(needOf({zone("a", 0), zone("b", 0)})).ok());
  {
    auto t = log->admit(needOf({zone("a", 0)}));
    ASSERT_TRUE(t.has_value());
    t->setSeq(5);
  }
  ASSERT_TRUE(log->activate(needOf({zone("c", 0)})).ok());
  EXPECT_EQ(log->currentEpoch(), 2u);
  // "a" belongs to the old epoch: the new one must take it again.
  EXPECT_FALSE(log->admit(needOf({zone("a", 0)})).has_value());
  log->safeUpTo(4);  // not yet: operation 5 of epoch 1 is not safe
  EXPECT_EQ(log->activeEntries(), 3u);
  log->safeUpTo(5);
  EXPECT_EQ(log->activeEntries(), 1u);
  auto reopened = open(2);
  ASSERT_EQ(reopened->recovered().keys.size(), 1u);
  EXPECT_EQ(reopened->recovered().keys[0], zone("c", 0));
}

TEST_F(ActivityLogTest, AnEpochWithAnOperationInFlightStays) {
  auto log = open(1);
  ASSERT_TRUE(log->reset().ok());
  ASSERT_TRUE(log->activate(needOf({zone("a", 0)})).ok());
  auto pinned = log->admit(needOf({zone("a", 0)}));
  ASSERT_TRUE(pinned.has_value());
  ASSERT_TRUE(log->activate(needOf({zone("b", 0)})).ok());
  EXPECT_EQ(log->currentEpoch(), 2u);
  log->safeUpTo(1000);
  EXPECT_EQ(log->activeEntries(), 2u);  // epoch 1 still admits "a"'s operation
  pinned->setSeq(7);
  pinned->release();
  log->safeUpTo(6);
  EXPECT_EQ(log->activeEntries(), 2u);
  log->safeUpTo(7);
  EXPECT_EQ(log->activeEntries(), 1u);
}

TEST_F(ActivityLogTest, ThreadsShareCommits) {
  auto log = open();
  ASSERT_TRUE(log->reset().ok());
  std::vector<std::thread> threads;
  std::atomic<int> admitted{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const auto need = needOf({zone("f" + std::to_string(t), static_cast<uint64_t>(i))});
        ASSERT_TRUE(log->activate(need).ok());
        if (log->admit(need).has_value()) {
          ++admitted;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(admitted, 160);
  EXPECT_EQ(log->activeEntries(), 160u);
}

int64_t birthOf(const std::string& path) {
  struct statx stx {};
  EXPECT_EQ(::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME | STATX_CTIME, &stx),
            0);
  const statx_timestamp& t = (stx.stx_mask & STATX_BTIME) ? stx.stx_btime : stx.stx_ctime;
  return int64_t{t.tv_sec} * 1000000 + t.tv_nsec / 1000;
}

TEST_F(ActivityLogTest, RecoveryFindsWhatWasBornInActiveDirectories) {
  const std::string root = dir_.path() + "/tree";
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root + "/d").c_str(), 0755), 0);
  std::ofstream(root + "/d/old") << "old";
  const int64_t old_birth = birthOf(root + "/d/old");
  // The next objects must be born on a later tick of the kernel's clock than "old".
  int64_t later = old_birth;
  for (int i = 0; i < 10000 && later <= old_birth; ++i) {
    std::ofstream(root + "/d/probe") << i;
    later = birthOf(root + "/d/probe");
    ::unlink((root + "/d/probe").c_str());
  }
  ASSERT_GT(later, old_birth);
  std::ofstream(root + "/d/new") << "new";
  ASSERT_EQ(::mkdir((root + "/d/newdir").c_str(), 0755), 0);

  ActivityLog::Recovered r;
  r.zone_size = 1 << 20;
  r.oldest_start_us = later;
  r.last_commit_us = later;
  r.keys = {{Kind::Dir, 0, "d", 0},    zone("big", 2),           {Kind::Meta, 0, "m", 0},
            {Kind::Moved, 0, "over", 0}, {Kind::Tail, 0, "cut", 3}};
  const int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ChangeLog log;
  recoverActivity(r, {fd}, {nullptr}, later, Millis(0), &log);
  const auto& c = log.roots().at(0);
  EXPECT_EQ(c.uncertain, (std::set<std::string>{"d/new", "d/newdir", "over"}));
  EXPECT_EQ(c.dirs, (std::set<std::string>{"d"}));
  EXPECT_EQ(c.paths.at("big").check, (std::map<uint64_t, uint64_t>{{2 << 20, 3 << 20}}));
  EXPECT_TRUE(c.paths.at("big").ranges.empty());
  EXPECT_TRUE(c.paths.at("m").meta);
  // A size changed: from its zone on, compared (to the end, whatever the size then).
  EXPECT_EQ(c.paths.at("cut").check, (std::map<uint64_t, uint64_t>{{3 << 20, ChangeLog::kEnd}}));
  EXPECT_TRUE(c.paths.at("cut").meta);
  EXPECT_TRUE(log.complete());

  // A clock that went back since the last commit: every entry counts as born.
  ChangeLog all;
  recoverActivity(r, {fd}, {nullptr}, later - 1000000, Millis(0), &all);
  EXPECT_EQ(all.roots().at(0).uncertain.count("d/old"), 1u);
  // A hard link made: the log cannot describe it.
  r.keys.push_back({Kind::Linked, 0, "l", 0});
  ChangeLog linked;
  recoverActivity(r, {fd}, {nullptr}, later, Millis(0), &linked);
  EXPECT_FALSE(linked.complete());
  ::close(fd);
}

// An entry this version cannot read (damage, another version) says something changed, not
// what: only a full reintegration is safe.
TEST_F(ActivityLogTest, AnUnknownEntryMeansTheLogIsIncomplete) {
  {
    auto log = open();
    ASSERT_TRUE(log->reset().ok());
    ASSERT_TRUE(log->activate(needOf({zone("db", 1)})).ok());
  }
  {
    auto db = Database::open(dir_.path() + "/al.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->exec("UPDATE al_entries SET kind = 99").ok());
  }
  auto log = open();
  ChangeLog changes;
  recoverActivity(log->recovered(), {AT_FDCWD}, {nullptr}, 0, Millis(0), &changes);
  EXPECT_FALSE(changes.complete());
}

// Once it cannot be written, a marker says so before anything goes on untracked.
TEST_F(ActivityLogTest, ABrokenLogLeavesItsMarker) {
  ActivityLog::Options o;
  o.broken_marker = dir_.path() + "/untracked";
  auto log = ActivityLog::open(dir_.path() + "/al.db", o, time_);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->reset().ok());
  {
    auto db = Database::open(dir_.path() + "/al.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->exec("DROP TABLE al_entries").ok());
  }
  EXPECT_FALSE((*log)->activate(needOf({zone("db", 1)})).ok());
  EXPECT_TRUE((*log)->broken());
  EXPECT_EQ(::access(o.broken_marker.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace halo::rfs
