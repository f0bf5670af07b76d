#include "config/duration.h"

#include <charconv>
#include <cstdint>

#include "base/strings.h"

namespace halo::config {
namespace {

// Microseconds per unit; "us" is the finest unit the syntax allows.
constexpr int64_t kMicrosPerMs = 1000;
constexpr int64_t kMicrosPerS = 1000 * kMicrosPerMs;
constexpr int64_t kMicrosPerM = 60 * kMicrosPerS;
constexpr int64_t kMicrosPerH = 60 * kMicrosPerM;
constexpr int64_t kMicrosPerD = 24 * kMicrosPerH;
// A year is far beyond any sensible timeout and keeps every later sum of durations in range.
constexpr int64_t kMaxMicros = 366 * kMicrosPerD;

int64_t unitMicros(std::string_view unit) {
  if (unit == "d") {
    return kMicrosPerD;
  }
  if (unit == "h") {
    return kMicrosPerH;
  }
  if (unit == "m") {
    return kMicrosPerM;
  }
  if (unit == "s") {
    return kMicrosPerS;
  }
  if (unit == "ms") {
    return kMicrosPerMs;
  }
  if (unit == "us") {
    return 1;
  }
  return 0;
}

Status invalid(std::string_view text, const std::string& expected) {
  return invalidArgument("invalid value '" + std::string(text) + "' (expected " + expected + ")");
}

}  // namespace

std::string durationExpectation(std::string_view implicit_unit) {
  return "a duration such as 300s, 700ms or a number of " + std::string(implicit_unit);
}

Result<Millis> parseDuration(std::string_view text, std::string_view implicit_unit) {
  const int64_t implicit = unitMicros(implicit_unit);
  if (implicit == 0) {
    return internalError("parseDuration: unknown implicit unit '" + std::string(implicit_unit) +
                         "'");
  }
  const std::string trimmed = trim(text);
  size_t digits = 0;
  while (digits < trimmed.size() && trimmed[digits] >= '0' && trimmed[digits] <= '9') {
    ++digits;
  }
  if (digits == 0) {
    return invalid(text, durationExpectation(implicit_unit));
  }
  const std::string_view suffix = std::string_view(trimmed).substr(digits);
  const int64_t unit = suffix.empty() ? implicit : unitMicros(suffix);
  if (unit == 0) {
    return invalid(text, durationExpectation(implicit_unit));
  }
  uint64_t number = 0;
  auto [ptr, ec] = std::from_chars(trimmed.data(), trimmed.data() + digits, number);
  if (ec != std::errc() || number > static_cast<uint64_t>(kMaxMicros / unit)) {
    return invalid(text, "a duration of at most 366d");
  }
  const int64_t micros = static_cast<int64_t>(number) * unit;
  if (micros > 0 && micros < implicit) {
    return invalid(text, "a duration of at least 1" + std::string(implicit_unit) +
                             ": this attribute counts in " + std::string(implicit_unit));
  }
  return Millis(micros / kMicrosPerMs);
}

std::string formatDuration(Millis d) {
  const int64_t ms = d.count();
  if (ms == 0) {
    return "0s";
  }
  struct Unit {
    int64_t ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {
      {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const Unit& u : kUnits) {
    if (ms % u.ms == 0) {
      return std::to_string(ms / u.ms) + u.name;
    }
  }
  return std::to_string(ms) + "ms";
}

}  // namespace halo::config
