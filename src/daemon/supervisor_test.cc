#include "daemon/supervisor.h"

#include <gtest/gtest.h>

namespace halo::daemon {
namespace {

TEST(SupervisorTest, RestartDelayBacksOffAndCaps) {
  EXPECT_EQ(restartDelay(1), Millis(100));
  EXPECT_EQ(restartDelay(2), Millis(1000));
  EXPECT_EQ(restartDelay(3), Millis(2000));
  EXPECT_EQ(restartDelay(5), Millis(8000));
  EXPECT_EQ(restartDelay(8), Millis(60000));
  EXPECT_EQ(restartDelay(50), Millis(60000));
}

}  // namespace
}  // namespace halo::daemon
