#include "config/values.h"

#include <gtest/gtest.h>

namespace halo::config::internal {
namespace {

TEST(Values, Integers) {
  EXPECT_EQ(parseInteger(" 42 "), 42);
  EXPECT_EQ(parseInteger("-1"), -1);
  EXPECT_FALSE(parseInteger("4x").has_value());
  EXPECT_FALSE(parseInteger("").has_value());
  EXPECT_FALSE(parseInteger("99999999999999999999").has_value());
  EXPECT_EQ(parseIntegerOrHex("0x10000"), 0x10000);
  EXPECT_FALSE(parseIntegerOrHex("0xZZ").has_value());
}

TEST(Values, Addresses) {
  EXPECT_TRUE(isIpAddress("192.168.1.1"));
  EXPECT_TRUE(isIpAddress("2001:db8::7334"));
  EXPECT_FALSE(isIpAddress("[2001:db8::7334]"));
  EXPECT_TRUE(isIpAddress("[2001:db8::7334]", /*allow_brackets=*/true));
  EXPECT_FALSE(isIpAddress("192.168.1.300"));
  EXPECT_TRUE(isHostName("node1.example.com"));
  EXPECT_TRUE(isHostName("node1.example.com."));
  EXPECT_FALSE(isHostName("10.0.0.300"));  // all-digit last label: a mistyped address
  EXPECT_FALSE(isHostName("a..b"));
  EXPECT_FALSE(isHostName("-a"));
  EXPECT_FALSE(isHostName("a_b"));
  EXPECT_TRUE(isNodeName("node_1"));
  EXPECT_FALSE(isNodeName("_node"));
  EXPECT_TRUE(isMacAddress("5A:FE:C0:A8:01:DE"));
  EXPECT_TRUE(isMacAddress("5a-fe-c0-a8-01-de"));
  EXPECT_FALSE(isMacAddress("5A:FE:C0:A8:01"));
  EXPECT_FALSE(isMacAddress("5A:FE-C0:A8:01:DE"));
  EXPECT_TRUE(isNetmask("255.255.255.0"));
  EXPECT_TRUE(isNetmask("24"));
  EXPECT_TRUE(isNetmask("255.255.255.255"));
  EXPECT_FALSE(isNetmask("255.0.255.0"));
  EXPECT_FALSE(isNetmask("129"));
}

TEST(Values, Paths) {
  EXPECT_TRUE(isCleanAbsolutePath("/var/lib/data"));
  EXPECT_FALSE(isCleanAbsolutePath("/"));
  EXPECT_FALSE(isCleanAbsolutePath("/var/"));
  EXPECT_FALSE(isCleanAbsolutePath("/var//lib"));
  EXPECT_FALSE(isCleanAbsolutePath("/var/../etc"));
  EXPECT_FALSE(isCleanAbsolutePath("var"));
  EXPECT_TRUE(isCleanRelativePath("pg_stat_tmp/x"));
  EXPECT_FALSE(isCleanRelativePath("../x"));
  EXPECT_FALSE(isCleanRelativePath("/x"));
  EXPECT_TRUE(isSameOrBelow("/a/b", "/a"));
  EXPECT_TRUE(isSameOrBelow("/a", "/a"));
  EXPECT_FALSE(isSameOrBelow("/ab", "/a"));
}

TEST(Values, Misc) {
  EXPECT_TRUE(isInterfaceName("eth0"));
  EXPECT_FALSE(isInterfaceName("averyveryverylongif"));
  EXPECT_FALSE(isInterfaceName("eth0:1"));
  EXPECT_TRUE(isResourceIdent("fe80::1"));
  EXPECT_FALSE(isResourceIdent("a b"));
  EXPECT_TRUE(isExtendedRegex("^tmp/.*\\.log$"));
  EXPECT_FALSE(isExtendedRegex("("));
  EXPECT_TRUE(isCronSpec("01 0 * * *"));
  EXPECT_TRUE(isCronSpec("*/5 1-3 * * mon,fri"));
  EXPECT_FALSE(isCronSpec("01 0 * *"));
  EXPECT_FALSE(isCronSpec("01 0 * * * ;rm"));
}

}  // namespace
}  // namespace halo::config::internal
