#pragma once
// TimeSource: the only way product code reads time, so tests and simulations can drive it.

#include <chrono>

namespace halo {

using MonotonicTime = std::chrono::steady_clock::time_point;
using SystemTime = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

// Thread-safety: implementations must be safe to call from any thread.
class TimeSource {
 public:
  virtual ~TimeSource() = default;
  // For intervals, timeouts and failure detection.
  virtual MonotonicTime monotonicTime() = 0;
  // For display and logs only; never for timeouts.
  virtual SystemTime systemTime() = 0;
};

class RealTimeSource : public TimeSource {
 public:
  MonotonicTime monotonicTime() override;
  SystemTime systemTime() override;
};

// A clock that moves only when told to; for unit tests and simulation.
class ManualTimeSource : public TimeSource {
 public:
  MonotonicTime monotonicTime() override { return mono_; }
  SystemTime systemTime() override { return sys_; }
  void advance(std::chrono::nanoseconds d) {
    mono_ += d;
    sys_ += std::chrono::duration_cast<SystemTime::duration>(d);
  }

 private:
  MonotonicTime mono_{std::chrono::hours(1)};
  SystemTime sys_{std::chrono::hours(24 * 365 * 50)};
};

// "2026-11-26 18:40:01.123456" in local time: the log line's date format.
std::string formatLogTime(SystemTime t);
// "2026-11-26T184001": the date part of userlog file names.
std::string formatFileTime(SystemTime t);

}  // namespace halo
