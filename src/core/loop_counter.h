#pragma once
// LoopCounter (reference 3.2.3, 2.2): bounds the automatic actions (restart, stopstart, wait
// requested by errd, checkers or failover rules, i.e. commands with -i) to `maxloop` per
// `loop_interval`. The window opens at the first counted action and closes loop_interval later;
// the action that exceeds maxloop is refused and the module must stop ("Action stop called by
// maxloop"). Admin commands without -i reset it. loop_interval 0 disables counting.
//
// Wall-clock time, because the window survives restarts (persisted) and is shown as the value of
// resource heart.stopstartloop; a clock stepped back before the window start opens a new window.

#include "base/time_source.h"

namespace halo::core {

// What the runtime persists.
struct LoopCounterState {
  int count = 0;
  SystemTime window_start{};  // meaningful when count > 0
  bool operator==(const LoopCounterState&) const = default;
};

class LoopCounter {
 public:
  LoopCounter(int maxloop, Millis loop_interval);

  // Counts one automatic action; false when it exceeds maxloop within the window.
  bool recordAutomaticAction(SystemTime now);
  // Whether the next automatic action would be refused (`checkloop`).
  bool wouldExceed(SystemTime now) const;
  void reset();

  // Actions counted in the current window (an expired window is cleared at the next record).
  int count() const { return count_; }
  // Start of the current window; the epoch when nothing is counted.
  SystemTime windowStart() const { return count_ > 0 ? window_start_ : SystemTime{}; }
  int maxloop() const { return maxloop_; }
  Millis loopInterval() const { return loop_interval_; }

  LoopCounterState save() const { return {count_, windowStart()}; }
  void restore(const LoopCounterState& state);

 private:
  bool enabled() const { return loop_interval_.count() > 0; }
  bool expired(SystemTime now) const;

  int maxloop_;
  Millis loop_interval_;
  int count_ = 0;
  SystemTime window_start_{};
};

}  // namespace halo::core
