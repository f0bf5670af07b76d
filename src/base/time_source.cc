#include "base/time_source.h"

#include <ctime>
#include <string>

namespace halo {

// The one place that reads the real clocks.
MonotonicTime RealTimeSource::monotonicTime() { return std::chrono::steady_clock::now(); }
SystemTime RealTimeSource::systemTime() { return std::chrono::system_clock::now(); }

namespace {
std::string formatWith(SystemTime t, const char* fmt, bool micros) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), fmt, &tm);
  std::string out(buf, n);
  if (micros) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        t.time_since_epoch()).count() % 1000000;
    char frac[16];
    std::snprintf(frac, sizeof(frac), ".%06lld", static_cast<long long>(us < 0 ? -us : us));
    out += frac;
  }
  return out;
}
}  // namespace

std::string formatLogTime(SystemTime t) { return formatWith(t, "%Y-%m-%d %H:%M:%S", true); }
std::string formatFileTime(SystemTime t) { return formatWith(t, "%Y-%m-%dT%H%M%S", false); }

}  // namespace halo
