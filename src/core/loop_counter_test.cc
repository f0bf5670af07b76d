#include "core/loop_counter.h"

#include <gtest/gtest.h>

namespace halo::core {
namespace {

using std::chrono::hours;
using std::chrono::minutes;

const SystemTime kT0{hours(24 * 365 * 50)};

TEST(LoopCounter, FourthActionWithinTheWindowIsRefused) {
  LoopCounter c(3, hours(24));
  EXPECT_EQ(c.count(), 0);
  EXPECT_EQ(c.windowStart(), SystemTime{});
  EXPECT_FALSE(c.wouldExceed(kT0));
  EXPECT_TRUE(c.recordAutomaticAction(kT0));
  EXPECT_EQ(c.windowStart(), kT0);
  EXPECT_TRUE(c.recordAutomaticAction(kT0 + hours(1)));
  EXPECT_FALSE(c.wouldExceed(kT0 + hours(2)));
  EXPECT_TRUE(c.recordAutomaticAction(kT0 + hours(2)));
  EXPECT_EQ(c.count(), 3);
  EXPECT_TRUE(c.wouldExceed(kT0 + hours(3)));
  EXPECT_FALSE(c.recordAutomaticAction(kT0 + hours(3)));  // "Action stop called by maxloop"
  EXPECT_FALSE(c.recordAutomaticAction(kT0 + hours(4)));
  EXPECT_EQ(c.count(), 4);
  EXPECT_EQ(c.windowStart(), kT0);  // the window does not slide
}

TEST(LoopCounter, WindowResetsAfterLoopInterval) {
  LoopCounter c(3, hours(24));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(c.recordAutomaticAction(kT0 + hours(i)));
  }
  EXPECT_TRUE(c.wouldExceed(kT0 + hours(24) - minutes(1)));
  EXPECT_FALSE(c.wouldExceed(kT0 + hours(24)));
  EXPECT_TRUE(c.recordAutomaticAction(kT0 + hours(25)));
  EXPECT_EQ(c.count(), 1);
  EXPECT_EQ(c.windowStart(), kT0 + hours(25));
}

TEST(LoopCounter, ResetByAdminCommand) {
  LoopCounter c(1, hours(24));
  EXPECT_TRUE(c.recordAutomaticAction(kT0));
  EXPECT_FALSE(c.recordAutomaticAction(kT0 + minutes(1)));
  c.reset();
  EXPECT_EQ(c.count(), 0);
  EXPECT_EQ(c.windowStart(), SystemTime{});
  EXPECT_TRUE(c.recordAutomaticAction(kT0 + minutes(2)));
  EXPECT_EQ(c.windowStart(), kT0 + minutes(2));
}

TEST(LoopCounter, ZeroIntervalDisablesCounting) {
  LoopCounter c(3, Millis(0));
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(c.recordAutomaticAction(kT0 + minutes(i)));
  }
  EXPECT_EQ(c.count(), 0);
  EXPECT_FALSE(c.wouldExceed(kT0));
}

TEST(LoopCounter, ZeroMaxloopRefusesEveryAutomaticAction) {
  LoopCounter c(0, hours(24));
  EXPECT_TRUE(c.wouldExceed(kT0));
  EXPECT_FALSE(c.recordAutomaticAction(kT0));
}

TEST(LoopCounter, ClockSteppedBackOpensANewWindow) {
  LoopCounter c(2, hours(24));
  EXPECT_TRUE(c.recordAutomaticAction(kT0));
  EXPECT_TRUE(c.recordAutomaticAction(kT0 + minutes(1)));
  EXPECT_FALSE(c.wouldExceed(kT0 - hours(1)));
  EXPECT_TRUE(c.recordAutomaticAction(kT0 - hours(1)));
  EXPECT_EQ(c.count(), 1);
  EXPECT_EQ(c.windowStart(), kT0 - hours(1));
}

TEST(LoopCounter, SaveAndRestore) {
  LoopCounter c(3, hours(24));
  EXPECT_TRUE(c.recordAutomaticAction(kT0));
  EXPECT_TRUE(c.recordAutomaticAction(kT0 + hours(1)));
  const LoopCounterState saved = c.save();
  EXPECT_EQ(saved, (LoopCounterState{2, kT0}));

  LoopCounter again(3, hours(24));
  again.restore(saved);
  EXPECT_EQ(again.count(), 2);
  EXPECT_EQ(again.windowStart(), kT0);
  EXPECT_TRUE(again.recordAutomaticAction(kT0 + hours(2)));
  EXPECT_FALSE(again.recordAutomaticAction(kT0 + hours(3)));

  // Values from an older or damaged store are clamped, never trusted blindly.
  again.restore({-5, kT0});
  EXPECT_EQ(again.count(), 0);
  EXPECT_EQ(again.windowStart(), SystemTime{});
  again.restore({1000, kT0});
  EXPECT_EQ(again.count(), 4);
  EXPECT_TRUE(again.wouldExceed(kT0 + hours(1)));
  EXPECT_EQ(LoopCounter(3, hours(24)).save(), LoopCounterState{});
}

}  // namespace
}  // namespace halo::core
