#include "base/strings.h"

#include <gtest/gtest.h>

#include "base/paths.h"

namespace halo {
namespace {

TEST(StringsTest, SplitTrimmed) {
  EXPECT_EQ(splitTrimmed(" a, b ,,c ", ","), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(splitTrimmed("  ", ",").empty());
}

TEST(StringsTest, ModuleNames) {
  EXPECT_TRUE(isValidModuleName("web"));
  EXPECT_TRUE(isValidModuleName("pg_mirror-2"));
  EXPECT_FALSE(isValidModuleName(""));
  EXPECT_FALSE(isValidModuleName("2web"));
  EXPECT_FALSE(isValidModuleName("../etc"));
  EXPECT_FALSE(isValidModuleName("a b"));
}

TEST(PathsTest, DeriveFromRoot) {
  Paths p = Paths::fromRoot("/tmp/n1/");
  EXPECT_EQ(p.etc, "/tmp/n1/etc/halo");
  EXPECT_EQ(p.moduleUserConfig("web"), "/tmp/n1/etc/halo/modules/web/conf/userconfig.xml");
  EXPECT_EQ(Paths::fromRoot("/").var, "/var/lib/halo");
}

}  // namespace
}  // namespace halo
