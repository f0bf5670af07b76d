#include "core/loop_counter.h"

#include <algorithm>

namespace halo::core {

LoopCounter::LoopCounter(int maxloop, Millis loop_interval)
    : maxloop_(std::max(maxloop, 0)), loop_interval_(loop_interval) {}

bool LoopCounter::expired(SystemTime now) const {
  return count_ > 0 && (now < window_start_ || now - window_start_ >= loop_interval_);
}

bool LoopCounter::recordAutomaticAction(SystemTime now) {
  if (!enabled()) {
    return true;
  }
  if (expired(now)) {
    count_ = 0;
  }
  if (count_ == 0) {
    window_start_ = now;
  }
  // Refused actions keep counting only up to the first refusal: the count stays meaningful.
  count_ = std::min(count_ + 1, maxloop_ + 1);
  return count_ <= maxloop_;
}

bool LoopCounter::wouldExceed(SystemTime now) const {
  if (!enabled()) {
    return false;
  }
  const int counted = expired(now) ? 0 : count_;
  return counted + 1 > maxloop_;
}

void LoopCounter::reset() {
  count_ = 0;
  window_start_ = SystemTime{};
}

void LoopCounter::restore(const LoopCounterState& state) {
  count_ = std::clamp(state.count, 0, maxloop_ + 1);
  window_start_ = count_ > 0 ? state.window_start : SystemTime{};
}

}  // namespace halo::core
