#include "config/duration.h"

#include <gtest/gtest.h>

namespace halo::config {
namespace {

TEST(ParseDuration, Units) {
  EXPECT_EQ(*parseDuration("2d", "s"), Millis(2 * 86400000));
  EXPECT_EQ(*parseDuration("3h", "s"), Millis(3 * 3600000));
  EXPECT_EQ(*parseDuration("5m", "s"), Millis(300000));
  EXPECT_EQ(*parseDuration("30s", "ms"), Millis(30000));
  EXPECT_EQ(*parseDuration("700ms", "ms"), Millis(700));
  EXPECT_EQ(*parseDuration("5000us", "ms"), Millis(5));
}

TEST(ParseDuration, BareNumberUsesImplicitUnit) {
  EXPECT_EQ(*parseDuration("700", "ms"), Millis(700));
  EXPECT_EQ(*parseDuration("300", "s"), Millis(300000));
  EXPECT_EQ(*parseDuration("24", "h"), Millis(24 * 3600000));
  EXPECT_EQ(*parseDuration("10", "m"), Millis(600000));
  EXPECT_EQ(*parseDuration(" 10 ", "s"), Millis(10000));
}

TEST(ParseDuration, ZeroIsZeroInAnyUnit) {
  EXPECT_EQ(*parseDuration("0", "s"), Millis(0));
  EXPECT_EQ(*parseDuration("0ms", "h"), Millis(0));
}

TEST(ParseDuration, BelowOneImplicitUnitIsRejected) {
  Result<Millis> r = parseDuration("500ms", "s");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "invalid value '500ms' (expected a duration of at least 1s: this attribute counts "
            "in s)");
  EXPECT_FALSE(parseDuration("59m", "h").ok());
  EXPECT_FALSE(parseDuration("999us", "ms").ok());
  // At least one unit passes and keeps its precision.
  EXPECT_EQ(*parseDuration("1500ms", "s"), Millis(1500));
  EXPECT_EQ(*parseDuration("60m", "h"), Millis(3600000));
}

TEST(ParseDuration, Garbage) {
  for (const char* bad : {"", "s", "-5s", "5 s", "5sec", "1.5s", "5S", "0x10", "ms700", "5mss"}) {
    Result<Millis> r = parseDuration(bad, "ms");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message(),
              "invalid value '" + std::string(bad) +
                  "' (expected a duration such as 300s, 700ms or a number of ms)");
  }
}

TEST(ParseDuration, Overflow) {
  EXPECT_FALSE(parseDuration("99999999999999999999999", "s").ok());
  EXPECT_FALSE(parseDuration("367d", "s").ok());
  EXPECT_TRUE(parseDuration("366d", "s").ok());
}

TEST(ParseDuration, UnknownImplicitUnitIsAnInternalError) {
  EXPECT_EQ(parseDuration("5", "weeks").status().code(), StatusCode::Internal);
}

TEST(FormatDuration, LargestExactUnit) {
  EXPECT_EQ(formatDuration(Millis(0)), "0s");
  EXPECT_EQ(formatDuration(Millis(700)), "700ms");
  EXPECT_EQ(formatDuration(Millis(30000)), "30s");
  EXPECT_EQ(formatDuration(Millis(90000)), "90s");
  EXPECT_EQ(formatDuration(Millis(300000)), "5m");
  EXPECT_EQ(formatDuration(std::chrono::hours(24)), "1d");
  EXPECT_EQ(formatDuration(std::chrono::hours(25)), "25h");
}

}  // namespace
}  // namespace halo::config
