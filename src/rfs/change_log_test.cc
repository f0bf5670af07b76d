#include "rfs/change_log.h"

#include <linux/falloc.h>

#include <gtest/gtest.h>
#include <stdio.h>  // RENAME_EXCHANGE
#include <sys/stat.h>

#include <random>
#include <string>

namespace halo::rfs {
namespace {

Op op(OpType type, std::string path, std::string path2 = "") {
  Op o;
  o.type = type;
  o.path = std::move(path);
  o.path2 = std::move(path2);
  return o;
}

Op write(std::string path, uint64_t offset, size_t size) {
  Op o = op(OpType::Write, std::move(path));
  o.offset = offset;
  o.data.assign(size, 'x');
  return o;
}

using Ranges = std::map<uint64_t, uint64_t>;

TEST(ChangeLogTest, WritesBecomeAlignedMergedRanges) {
  ChangeLog log;
  log.record(write("db", 10, 100));        // block 0
  log.record(write("db", 8192, 4096));     // block 2
  log.record(write("db", 4096, 1));        // block 1: joins 0 and 2
  log.record(write("db", 1 << 20, 5000));  // blocks 256-257
  const auto& pc = log.roots().at(0).paths.at("db");
  EXPECT_EQ(pc.ranges, (Ranges{{0, 12288}, {1 << 20, (1 << 20) + 8192}}));
  EXPECT_FALSE(pc.meta);
  EXPECT_EQ(log.dirtyBytes(), 12288u + 8192u);
  EXPECT_TRUE(log.roots().at(0).dirs.empty());
  EXPECT_TRUE(log.complete());
}

TEST(ChangeLogTest, CreatedObjectsAreFreshAndTheirParentsListed) {
  ChangeLog log;
  log.record(op(OpType::Mkdir, "a"));
  log.record(op(OpType::Create, "a/f"));  // below a fresh directory: nothing more to record
  log.record(write("a/f", 0, 4096));
  log.record(op(OpType::Create, "g"));
  log.record(write("g", 0, 10));  // a fresh file is sent whole anyway
  const auto& r = log.roots().at(0);
  EXPECT_EQ(r.fresh, (std::set<std::string>{"a", "g"}));
  EXPECT_EQ(r.dirs, (std::set<std::string>{""}));
  EXPECT_TRUE(r.paths.empty());
  EXPECT_EQ(log.paths(), 3u);
}

TEST(ChangeLogTest, UnlinkAndRmdirForgetWhatWasBelow) {
  ChangeLog log;
  log.record(write("d/x", 0, 1));
  log.record(write("d/y/z", 0, 1));
  log.record(write("d-sibling", 0, 1));
  log.record(op(OpType::Unlink, "d/x"));
  log.record(op(OpType::Rmdir, "d/y"));  // as if emptied first
  const auto& r = log.roots().at(0);
  EXPECT_EQ(r.paths.count("d/x"), 0u);
  EXPECT_EQ(r.paths.count("d/y/z"), 0u);
  EXPECT_EQ(r.paths.count("d-sibling"), 1u);  // shares the prefix, not the directory
  EXPECT_EQ(r.dirs, (std::set<std::string>{"d"}));
}

TEST(ChangeLogTest, RenameMakesTheTargetFreshAndForgetsTheSource) {
  ChangeLog log;
  log.record(write("a/big", 0, 1 << 20));
  log.record(write("b/old", 0, 1));
  log.record(op(OpType::Rename, "a/big", "b/old"));
  const auto& r = log.roots().at(0);
  EXPECT_TRUE(r.paths.empty());
  EXPECT_EQ(r.fresh, (std::set<std::string>{"b/old"}));
  EXPECT_EQ(r.dirs, (std::set<std::string>{"a", "b"}));
}

TEST(ChangeLogTest, ExchangeMakesBothFresh) {
  ChangeLog log;
  Op x = op(OpType::Rename, "p", "q");
  x.flags = RENAME_EXCHANGE;
  log.record(x);
  EXPECT_EQ(log.roots().at(0).fresh, (std::set<std::string>{"p", "q"}));
}

TEST(ChangeLogTest, MetadataAndHardLinks) {
  ChangeLog log;
  log.record(op(OpType::SetAttr, "f"));
  log.record(op(OpType::SetXattr, ""));
  EXPECT_TRUE(log.roots().at(0).paths.at("f").meta);
  EXPECT_TRUE(log.roots().at(0).paths.at("").meta);
  EXPECT_TRUE(log.complete());
  log.record(op(OpType::Link, "f", "g"));
  EXPECT_FALSE(log.complete());
  log.clear();
  EXPECT_TRUE(log.complete());
  EXPECT_TRUE(log.empty());
}

// What follows a new size, or a collapsed or inserted range, is compared (the sizes cannot
// tell a file cut and grown back); the bytes to copy do not count it.
TEST(ChangeLogTest, SizeChangesAndShiftsMakeTheTailCompared) {
  ChangeLog log;
  Op cut = op(OpType::SetAttr, "f");
  cut.flags = kSetSize;
  cut.length = 5000;
  log.record(cut);
  const auto& pc = log.roots().at(0).paths.at("f");
  EXPECT_TRUE(pc.meta);
  EXPECT_EQ(pc.check, (Ranges{{4096, ChangeLog::kEnd}}));
  EXPECT_TRUE(pc.ranges.empty());
  EXPECT_EQ(log.dirtyBytes(), 0u);
  Op collapse = op(OpType::Fallocate, "g");
  collapse.flags = FALLOC_FL_COLLAPSE_RANGE;
  collapse.offset = 8192;
  collapse.length = 4096;
  log.record(collapse);
  EXPECT_EQ(log.roots().at(0).paths.at("g").check, (Ranges{{8192, ChangeLog::kEnd}}));
  Op chmod = op(OpType::SetAttr, "h");
  chmod.flags = kSetMode;
  log.record(chmod);
  EXPECT_TRUE(log.roots().at(0).paths.at("h").check.empty());
  // Rows keep it (journal, wire).
  auto [flags, blob] = log.row(0, "f");
  ChangeLog back;
  ASSERT_TRUE(back.addRow(0, "f", flags, blob).ok());
  EXPECT_EQ(back.roots().at(0).paths.at("f"), pc);
}

TEST(ChangeLogTest, RootsAreSeparate) {
  ChangeLog log;
  Op a = write("f", 0, 1);
  Op b = op(OpType::Unlink, "f");
  b.root = 1;
  log.record(a);
  log.record(b);
  EXPECT_EQ(log.roots().at(0).paths.count("f"), 1u);
  EXPECT_EQ(log.roots().at(1).dirs, (std::set<std::string>{""}));
}

TEST(ChangeLogTest, MergeIsTheUnion) {
  ChangeLog a;
  ChangeLog b;
  a.record(write("f", 0, 4096));
  b.record(write("f", 8192, 4096));
  b.record(op(OpType::Mkdir, "d"));
  a.record(write("d/inside", 0, 1));
  a.merge(b);
  const auto& r = a.roots().at(0);
  EXPECT_EQ(r.paths.at("f").ranges, (Ranges{{0, 4096}, {8192, 12288}}));
  EXPECT_EQ(r.fresh, (std::set<std::string>{"d"}));
  EXPECT_EQ(r.paths.count("d/inside"), 0u);  // the fresh directory covers it
}

TEST(ChangeLogTest, TouchedKeysAndRowsRebuildTheLog) {
  ChangeLog log;
  log.record(write("f", 0, 4096));
  log.record(op(OpType::Mkdir, "d"));
  log.record(op(OpType::SetAttr, "m"));
  auto touched = log.takeTouched();
  EXPECT_EQ(touched.size(), 4u);  // f, d, its parent "", m
  ChangeLog copy;
  for (const auto& [root, path] : touched) {
    auto [flags, ranges] = log.row(root, path);
    ASSERT_TRUE(copy.addRow(root, path, flags, ranges).ok());
  }
  EXPECT_EQ(copy, log);
  log.record(op(OpType::Unlink, "f"));
  touched = log.takeTouched();
  EXPECT_TRUE(touched.count({0, "f"}));
  EXPECT_EQ(log.row(0, "f").first, 0);  // deleted from the journal
}

TEST(ChangeLogTest, CheckRangesAreKeptApartFromChangedOnes) {
  ChangeLog log;
  log.addCheck(0, "db", 0, 4 << 20);
  log.record(write("db", 8192, 100));
  const auto& pc = log.roots().at(0).paths.at("db");
  EXPECT_EQ(pc.check, (Ranges{{0, 4 << 20}}));
  EXPECT_EQ(pc.ranges, (Ranges{{8192, 12288}}));
  EXPECT_EQ(log.checkBytes(), 4u << 20);
  EXPECT_EQ(log.dirtyBytes(), 4096u);
  auto [flags, ranges] = log.row(0, "db");
  ChangeLog copy;
  ASSERT_TRUE(copy.addRow(0, "db", flags, ranges).ok());
  EXPECT_EQ(copy, log);
  ChangeLog only_check;
  only_check.addCheck(0, "x", 4096, 1);
  auto [f2, r2] = only_check.row(0, "x");
  ChangeLog copy2;
  ASSERT_TRUE(copy2.addRow(0, "x", f2, r2).ok());
  EXPECT_EQ(copy2, only_check);
}

TEST(ChangeLogTest, EncodeDecodeRoundTrip) {
  ChangeLog log;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) {
    const std::string path = "d" + std::to_string(rng() % 5) + "/f" + std::to_string(rng() % 40);
    switch (rng() % 5) {
      case 0:
        log.record(op(OpType::Create, path));
        break;
      case 1:
        log.record(op(OpType::Unlink, path));
        break;
      case 2:
        log.record(op(OpType::SetAttr, path));
        log.addCheck(0, path, rng() % (1 << 30), 1 + rng() % (1 << 22));
        break;
      default:
        log.record(write(path, rng() % (1 << 30), 1 + rng() % (1 << 20)));
    }
  }
  auto decoded = ChangeLog::decode(log.encode());
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, log);
  EXPECT_EQ(decoded->dirtyBytes(), log.dirtyBytes());
}

TEST(ChangeLogTest, DecodeRefusesGarbage) {
  EXPECT_FALSE(ChangeLog::decode("").ok());
  EXPECT_FALSE(ChangeLog::decode("HRCL\x09\x01").ok());
  ChangeLog log;
  log.record(write("f", 0, 1));
  std::string bytes = log.encode();
  for (size_t cut = 7; cut < bytes.size(); ++cut) {  // 6: the header alone, an empty log
    EXPECT_FALSE(ChangeLog::decode(bytes.substr(0, cut)).ok()) << cut;
  }
  std::string bad_path = bytes;
  bad_path[8] = '/';  // the path "f" becomes "/"
  EXPECT_FALSE(ChangeLog::decode(bad_path).ok());
  EXPECT_FALSE(decodeRanges(std::string("\x00\x00", 2)).ok());  // an empty range
}

}  // namespace
}  // namespace halo::rfs
