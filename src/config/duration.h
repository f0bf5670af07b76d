#pragma once
// Time values of the configuration files (reference 3.2.1): "700ms", "30s", "24h" or a bare
// number in the attribute's implicit unit, as SafeKit 8.2.5+ accepts them.

#include <string>
#include <string_view>

#include "base/status.h"
#include "base/time_source.h"

namespace halo::config {

// Parses `text` ("<digits>[d|h|m|s|ms|us]"); a bare number is in `implicit_unit` (one of the same
// suffixes). A non-zero value below one implicit unit ("500ms" for a value counted in s) is
// rejected because SafeKit rounds it to 0; "0" in any unit is returned as 0 and the caller decides
// whether 0 is allowed. Sub-millisecond remainders are truncated. On error the message is
// "invalid value '<text>' (expected ...)", ready to be prefixed with the element and attribute.
Result<Millis> parseDuration(std::string_view text, std::string_view implicit_unit);

// The shortest exact spelling of `d` with the largest unit: 700ms, 30s, 5m, 24h, 2d; 0 is "0s".
std::string formatDuration(Millis d);

// What a duration attribute expects, for error messages:
// "a duration such as 300s, 700ms or a number of s".
std::string durationExpectation(std::string_view implicit_unit);

}  // namespace halo::config
