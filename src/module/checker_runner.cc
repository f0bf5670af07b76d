#include "module/checker_runner.h"

namespace halo::module {

ResourceState HealthCounter::sample(bool up) {
  const ResourceState seen = up ? ResourceState::Up : ResourceState::Down;
  if (state_ == ResourceState::Init || state_ == ResourceState::Unknown) {
    state_ = seen;
    streak_ = 0;
  } else if (seen == state_) {
    streak_ = 0;
  } else if (++streak_ >= (up ? kRiseCount : kFallCount)) {
    state_ = seen;
    streak_ = 0;
  }
  return state_;
}

PeriodicProbe::PeriodicProbe(sys::EventLoop& loop, Millis interval, Probe probe, Report report)
    : loop_(loop),
      interval_(interval),
      probe_(std::move(probe)),
      report_(std::move(report)),
      thread_([this] { run(); }) {}

void PeriodicProbe::requestStop() {
  *epoch_ = 0;  // drops reports already posted
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
}

PeriodicProbe::~PeriodicProbe() {
  requestStop();
  thread_.join();
}

void PeriodicProbe::setActive(bool active) {
  if (active == active_) {
    return;
  }
  active_ = active;
  ++*epoch_;  // results of the previous activation are stale
  {
    std::lock_guard<std::mutex> lock(mutex_);
    thread_active_ = active;
    thread_epoch_ = *epoch_;
  }
  cv_.notify_all();
}

void PeriodicProbe::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    if (!thread_active_) {
      cv_.wait(lock, [this] { return stop_ || thread_active_; });
      continue;
    }
    const uint64_t epoch = thread_epoch_;
    lock.unlock();
    sys::ProbeOutcome outcome = probe_();
    loop_.post([this, outcome, epoch, token = std::weak_ptr<uint64_t>(epoch_)] {
      auto live = token.lock();
      if (live && *live == epoch) {
        report_(outcome);
      }
    });
    lock.lock();
    // Sleep one interval, or less if deactivated, stopped or re-activated meanwhile.
    cv_.wait_for(lock, interval_, [this, epoch] { return stop_ || thread_epoch_ != epoch; });
  }
}

}  // namespace halo::module
