#include "rfs/journal.h"

#include <gtest/gtest.h>

#include "sys/test_temp_dir.h"

namespace halo::rfs {
namespace {

Op write(std::string path, uint64_t offset, size_t size) {
  Op o;
  o.type = OpType::Write;
  o.path = std::move(path);
  o.offset = offset;
  o.data.assign(size, 'x');
  return o;
}

JournalDelta deltaOf(ChangeLog& log, uint64_t base, bool rewrite = false) {
  JournalDelta d;
  d.base = base;
  d.complete = log.complete();
  d.rewrite = rewrite;
  for (const auto& [root, path] : log.takeTouched()) {
    auto [flags, ranges] = log.row(root, path);
    d.rows.push_back({root, path, flags, ranges});
  }
  return d;
}

TEST(JournalTest, AFreshJournalHasNoSyncPointAndWasStoppedCleanly) {
  testutil::TempDir dir;
  auto j = Journal::open(dir.path() + "/rfs.db");
  ASSERT_TRUE(j.ok()) << j.status().message();
  auto loaded = (*j)->load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->base, 0u);
  EXPECT_TRUE(loaded->clean);
  EXPECT_TRUE(loaded->log.empty());
  EXPECT_TRUE(loaded->log.complete());
}

TEST(JournalTest, DeltasRebuildTheLogAndCleanlinessIsRemembered) {
  testutil::TempDir dir;
  const std::string path = dir.path() + "/rfs.db";
  ChangeLog log;
  {
    auto j = Journal::open(path);
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->load().ok());
    log.record(write("a", 0, 10000));
    Op mk;
    mk.type = OpType::Mkdir;
    mk.path = "d";
    log.record(mk);
    ASSERT_TRUE((*j)->write(deltaOf(log, 42)).ok());
    Op rm;
    rm.type = OpType::Unlink;
    rm.path = "a";
    log.record(rm);  // deletes the row of "a"
    log.record(write("b", 4096, 1));
    ASSERT_TRUE((*j)->write(deltaOf(log, 42)).ok());
    // No markClean(): as if the process had been killed.
  }
  {
    auto j = Journal::open(path);
    ASSERT_TRUE(j.ok());
    auto loaded = (*j)->load();
    ASSERT_TRUE(loaded.ok());
    EXPECT_EQ(loaded->base, 42u);
    EXPECT_FALSE(loaded->clean);
    EXPECT_EQ(loaded->log, log);
    ASSERT_TRUE((*j)->markClean().ok());
  }
  {
    auto j = Journal::open(path);
    ASSERT_TRUE(j.ok());
    auto loaded = (*j)->load();
    ASSERT_TRUE(loaded.ok());
    EXPECT_TRUE(loaded->clean);
    ASSERT_TRUE((*j)->resetTo(7).ok());
  }
  auto j = Journal::open(path);
  ASSERT_TRUE(j.ok());
  auto loaded = (*j)->load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->base, 7u);
  EXPECT_TRUE(loaded->log.empty());
}

TEST(JournalTest, AnIncompleteLogStaysIncomplete) {
  testutil::TempDir dir;
  const std::string path = dir.path() + "/rfs.db";
  ChangeLog log;
  log.markIncomplete();
  {
    auto j = Journal::open(path);
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->write(deltaOf(log, 1)).ok());
  }
  auto j = Journal::open(path);
  ASSERT_TRUE(j.ok());
  auto loaded = (*j)->load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->log.complete());
}

}  // namespace
}  // namespace halo::rfs
