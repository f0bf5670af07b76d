#include "config/macros.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace halo::config {
namespace {

TEST(MacroExpander, SubstitutesMacrosAndEnvironment) {
  MacroExpander ex({{"PORT", "80"}, {"DIR", "/srv"}}, {{"HOME", "/root"}});
  EXPECT_EQ(*ex.expand("%DIR%/www:%PORT%"), "/srv/www:80");
  EXPECT_EQ(*ex.expand("%HOME%/x"), "/root/x");
  EXPECT_EQ(*ex.expand("no macros"), "no macros");
  EXPECT_EQ(*ex.expand(""), "");
}

TEST(MacroExpander, MacroWinsOverEnvironment) {
  MacroExpander ex({{"HOME", "/from/macro"}}, {{"HOME", "/from/env"}});
  EXPECT_EQ(*ex.expand("%HOME%"), "/from/macro");
}

TEST(MacroExpander, DoublePercentIsALiteralPercent) {
  MacroExpander ex({{"X", "1"}}, {});
  EXPECT_EQ(*ex.expand("100%%"), "100%");
  EXPECT_EQ(*ex.expand("%%X%%"), "%X%");
  EXPECT_EQ(*ex.expand("%%%X%"), "%1");
}

TEST(MacroExpander, LonePercentIsKept) {
  MacroExpander ex({}, {});
  EXPECT_EQ(*ex.expand("50%"), "50%");
  EXPECT_EQ(*ex.expand("a % b % c"), "a % b % c");
  EXPECT_EQ(*ex.expand("%1%"), "%1%");
}

TEST(MacroExpander, UndefinedNameIsAnError) {
  MacroExpander ex({{"A", "1"}}, {});
  Result<std::string> r = ex.expand("x %A% %MISSING% y");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "undefined macro %MISSING%");
}

TEST(MacroExpander, ValuesAreNotRescanned) {
  MacroExpander ex({{"A", "%B%"}, {"B", "b"}}, {});
  EXPECT_EQ(*ex.expand("%A%"), "%B%");
}

TEST(IsIdentifier, Rules) {
  EXPECT_TRUE(isIdentifier("APACHE_PORT"));
  EXPECT_TRUE(isIdentifier("_x1"));
  EXPECT_FALSE(isIdentifier(""));
  EXPECT_FALSE(isIdentifier("1abc"));
  EXPECT_FALSE(isIdentifier("my-port"));
}

TEST(ProcessEnvironment, CopiesEnviron) {
  ASSERT_EQ(setenv("HALO_CONFIG_TEST_VAR", "a=b", 1), 0);
  Environment env = processEnvironment();
  EXPECT_EQ(env["HALO_CONFIG_TEST_VAR"], "a=b");
  unsetenv("HALO_CONFIG_TEST_VAR");
}

}  // namespace
}  // namespace halo::config
