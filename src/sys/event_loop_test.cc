#include "sys/event_loop.h"

#include <gtest/gtest.h>

#include <thread>

namespace halo::sys {
namespace {

TEST(EventLoopTest, ExitBeforeRunReturnsAtOnce) {
  // A runtime that recovers straight into STOP asks to exit before its loop runs.
  RealTimeSource time;
  auto loop = EventLoop::create(time);
  ASSERT_TRUE(loop.ok());
  (*loop)->exit();
  EXPECT_TRUE((*loop)->run().ok());
}

TEST(EventLoopTest, TimersFireInDeadlineOrderAndCancelWorks) {
  RealTimeSource time;
  auto loop = EventLoop::create(time);
  ASSERT_TRUE(loop.ok());
  std::vector<int> order;
  (*loop)->addTimer(Millis(20), [&] { order.push_back(2); });
  auto cancelled = (*loop)->addTimer(Millis(10), [&] { order.push_back(99); });
  (*loop)->addTimer(Millis(5), [&] { order.push_back(1); });
  (*loop)->addTimer(Millis(30), [&] { (*loop)->exit(); });
  (*loop)->cancelTimer(cancelled);
  ASSERT_TRUE((*loop)->run().ok());
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(EventLoopTest, PostFromAnotherThreadRunsOnTheLoop) {
  RealTimeSource time;
  auto loop = EventLoop::create(time);
  ASSERT_TRUE(loop.ok());
  std::thread::id ran_on;
  std::thread t([&] {
    (*loop)->post([&] {
      ran_on = std::this_thread::get_id();
      (*loop)->exit();
    });
  });
  ASSERT_TRUE((*loop)->run().ok());
  t.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

}  // namespace
}  // namespace halo::sys
