#include "rfs/filter.h"

#include <gtest/gtest.h>

namespace halo::rfs {
namespace {

config::ReplicatedConfig dir(std::vector<config::NotReplicatedConfig> rules) {
  config::ReplicatedConfig d;
  d.dir = "/var/lib/app";
  d.notreplicated = std::move(rules);
  return d;
}

config::NotReplicatedConfig path(std::string p, int line = 3) {
  config::NotReplicatedConfig n;
  n.path = std::move(p);
  n.line = line;
  return n;
}

config::NotReplicatedConfig regex(std::string r, bool only = false, int line = 4) {
  config::NotReplicatedConfig n;
  n.regexpath = std::move(r);
  n.only_matching = only;
  n.line = line;
  return n;
}

TEST(ReplicationFilterTest, NoRuleReplicatesEverything) {
  auto f = ReplicationFilter::create(dir({}));
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE((*f)->excludesNothing());
  EXPECT_TRUE((*f)->replicated("", false));
  EXPECT_TRUE((*f)->replicated("a/b/c", false));
}

TEST(ReplicationFilterTest, PathExcludesItsSubtreeOnly) {
  auto f = ReplicationFilter::create(dir({path("pg_stat_tmp/"), path("logs/debug")}));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_FALSE((*f)->replicated("pg_stat_tmp", false));
  EXPECT_FALSE((*f)->replicated("pg_stat_tmp/global.stat", false));
  EXPECT_TRUE((*f)->replicated("pg_stat_tmp2", false));  // a prefix of a name is not an ancestor
  EXPECT_TRUE((*f)->replicated("base/pg_stat_tmp", false));
  EXPECT_FALSE((*f)->replicated("logs/debug/1.log", false));
  EXPECT_TRUE((*f)->replicated("logs/info.log", false));
  EXPECT_TRUE((*f)->replicated("", false));
}

TEST(ReplicationFilterTest, RegexExcludesMatchesAndWhatIsBelowAMatchingDirectory) {
  auto f = ReplicationFilter::create(dir({regex("\\.tmp$"), regex("^cache(/|$)")}));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_FALSE((*f)->replicated("a/b/file.tmp", false));
  EXPECT_TRUE((*f)->replicated("a/b/file.tmpx", false));
  EXPECT_FALSE((*f)->replicated("cache", false));
  EXPECT_FALSE((*f)->replicated("cache/x/y", false));
  EXPECT_TRUE((*f)->replicated("nocache/x", false));
  // A directory named *.tmp takes its contents with it.
  EXPECT_FALSE((*f)->replicated("build.tmp/obj/a.o", false));
}

TEST(ReplicationFilterTest, BangRegexReplicatesOnlyMatchingFilesAndEveryDirectory) {
  auto f = ReplicationFilter::create(dir({regex("\\.db$", true), path("scratch")}));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_FALSE((*f)->excludesNothing());
  EXPECT_TRUE((*f)->replicated("data/app.db", false));
  EXPECT_FALSE((*f)->replicated("data/app.log", false));
  EXPECT_TRUE((*f)->replicated("data", true));  // it holds app.db
  EXPECT_TRUE((*f)->replicated("data/sub.d", true));
  EXPECT_FALSE((*f)->replicated("scratch/x.db", false));  // excluded wins
  EXPECT_FALSE((*f)->replicated("scratch", true));
}

TEST(ReplicationFilterTest, BadRulesNameTheLine) {
  auto bad = ReplicationFilter::create(dir({regex("(", false, 12)}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 12: regexpath '('"), std::string::npos)
      << bad.status().message();
  auto only = ReplicationFilter::create(dir({regex("([", true, 7)}));
  ASSERT_FALSE(only.ok());
  EXPECT_NE(only.status().message().find("line 7: regexpath '!(['"), std::string::npos)
      << only.status().message();
  auto absolute = ReplicationFilter::create(dir({path("/etc", 9)}));
  ASSERT_FALSE(absolute.ok());
  EXPECT_NE(absolute.status().message().find("line 9"), std::string::npos);
}

}  // namespace
}  // namespace halo::rfs
