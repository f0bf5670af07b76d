#pragma once
// Checker plumbing: a probe that runs periodically on its own thread (probes block up to their
// timeout, the runtime's loop must not), reporting each outcome on the loop; and the rise/fall
// counter that turns samples into resource transitions.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "core/resource_state.h"
#include "sys/event_loop.h"
#include "sys/probes.h"

namespace halo::module {

// Consecutive samples needed to change a checker's resource: one flaky sample is not a failure.
inline constexpr int kFallCount = 2;
inline constexpr int kRiseCount = 2;

// Rise/fall thresholds over samples. From init, the first sample decides (so a start is not held
// for two intervals); afterwards a change needs kFallCount / kRiseCount agreeing samples.
class HealthCounter {
 public:
  // Returns the resource state after this sample.
  ResourceState sample(bool up);
  void reset() {
    state_ = ResourceState::Init;
    streak_ = 0;
  }
  ResourceState state() const { return state_; }

 private:
  ResourceState state_ = ResourceState::Init;
  int streak_ = 0;  // consecutive samples that disagree with state_
};

class PeriodicProbe {
 public:
  using Probe = std::function<sys::ProbeOutcome()>;
  using Report = std::function<void(const sys::ProbeOutcome&)>;

  // `report` runs on `loop`; nothing is reported after destruction or while inactive.
  PeriodicProbe(sys::EventLoop& loop, Millis interval, Probe probe, Report report);
  ~PeriodicProbe();
  PeriodicProbe(const PeriodicProbe&) = delete;
  PeriodicProbe& operator=(const PeriodicProbe&) = delete;

  // Lets the thread finish its current probe and end; the destructor then only joins.
  void requestStop();
  // Must be called on the loop thread. Activation probes at once.
  void setActive(bool active);
  bool active() const { return active_; }

 private:
  void run();

  sys::EventLoop& loop_;
  const Millis interval_;
  Probe probe_;
  Report report_;
  bool active_ = false;  // loop thread's view
  // Shared with posted reports: cleared on the loop thread, so a report posted before
  // destruction or deactivation is dropped there.
  std::shared_ptr<uint64_t> epoch_ = std::make_shared<uint64_t>(1);
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;            // guarded by mutex_
  bool thread_active_ = false;   // guarded by mutex_
  uint64_t thread_epoch_ = 1;    // guarded by mutex_
  std::thread thread_;
};

}  // namespace halo::module
