#include "config/values.h"

#include <arpa/inet.h>
#include <regex.h>

#include <cctype>
#include <charconv>
#include <string>

#include "base/strings.h"

namespace halo::config::internal {
namespace {

bool isBlank(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

}  // namespace

std::optional<int64_t> parseInteger(std::string_view text) {
  const std::string t = trim(text);
  if (t.empty()) {
    return std::nullopt;
  }
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc() || ptr != t.data() + t.size()) {
    return std::nullopt;
  }
  return value;
}

std::optional<int64_t> parseIntegerOrHex(std::string_view text) {
  const std::string t = trim(text);
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(t.data() + 2, t.data() + t.size(), value, 16);
    if (ec != std::errc() || ptr != t.data() + t.size()) {
      return std::nullopt;
    }
    return value;
  }
  return parseInteger(t);
}

bool isIpAddress(std::string_view text, bool allow_brackets) {
  std::string s(text);
  if (allow_brackets && s.size() > 2 && s.front() == '[' && s.back() == ']') {
    s = s.substr(1, s.size() - 2);
    unsigned char buf[16];
    return inet_pton(AF_INET6, s.c_str(), buf) == 1;
  }
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool isHostName(std::string_view text) {
  if (text.empty() || text.size() > 253) {
    return false;
  }
  if (text.back() == '.') {
    text.remove_suffix(1);  // A fully qualified name may end with the root dot.
  }
  bool last_all_digits = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('.', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const std::string_view label = text.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    last_all_digits = true;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
        return false;
      }
      if (!std::isdigit(static_cast<unsigned char>(c))) {
        last_all_digits = false;
      }
    }
    start = end + 1;
  }
  return !last_all_digits;
}

bool isNodeName(std::string_view text) {
  if (text.empty() || text.size() > 63 || !std::isalnum(static_cast<unsigned char>(text[0]))) {
    return false;
  }
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

bool isIpOrHostName(std::string_view text, bool allow_brackets) {
  return isIpAddress(text, allow_brackets) || isHostName(text);
}

bool isMacAddress(std::string_view text) {
  if (text.size() != 17) {
    return false;
  }
  const char sep = text[2];
  if (sep != ':' && sep != '-') {
    return false;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (i % 3 == 2) {
      if (text[i] != sep) {
        return false;
      }
    } else if (!std::isxdigit(static_cast<unsigned char>(text[i]))) {
      return false;
    }
  }
  return true;
}

bool isNetmask(std::string_view text) {
  if (auto prefix = parseInteger(text)) {
    return *prefix >= 0 && *prefix <= 128 && text.find_first_of("+- ") == std::string_view::npos;
  }
  std::string s(text);
  in_addr addr{};
  if (inet_pton(AF_INET, s.c_str(), &addr) != 1) {
    return false;
  }
  const uint32_t mask = ntohl(addr.s_addr);
  // Contiguous ones: the complement plus one is a power of two (or zero for /32 overflow).
  const uint32_t inverted = ~mask;
  return (inverted & (inverted + 1)) == 0;
}

bool isInterfaceName(std::string_view text) {
  if (text.empty() || text.size() > 15 || text == "." || text == "..") {
    return false;
  }
  for (char c : text) {
    if (c == '/' || c == ':' || isBlank(c) || static_cast<unsigned char>(c) < 0x20) {
      return false;
    }
  }
  return true;
}

bool isResourceIdent(std::string_view text) {
  if (text.empty() || text.size() > 128) {
    return false;
  }
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("_-.:@").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

namespace {

// Checks the '/'-separated components of a path body (no leading '/').
bool cleanComponents(std::string_view body) {
  if (body.empty()) {
    return false;
  }
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('/', start);
    if (end == std::string_view::npos) {
      end = body.size();
    }
    const std::string_view part = body.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return false;
    }
    for (char c : part) {
      if (c == '\0' || c == '\n' || c == '\r') {
        return false;
      }
    }
    start = end + 1;
  }
  return true;
}

}  // namespace

bool isCleanAbsolutePath(std::string_view text) {
  return text.size() > 1 && text.front() == '/' && cleanComponents(text.substr(1));
}

bool isCleanRelativePath(std::string_view text) {
  return !text.empty() && text.front() != '/' && cleanComponents(text);
}

bool isSameOrBelow(std::string_view inner, std::string_view outer) {
  if (inner.size() < outer.size() || inner.substr(0, outer.size()) != outer) {
    return false;
  }
  return inner.size() == outer.size() || inner[outer.size()] == '/';
}

bool isExtendedRegex(std::string_view text) {
  regex_t re;
  const std::string pattern(text);
  if (regcomp(&re, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0) {
    return false;
  }
  regfree(&re);
  return true;
}

bool isCronSpec(std::string_view text) {
  const std::vector<std::string> fields = splitTrimmed(text, " \t");
  if (fields.size() != 5) {
    return false;
  }
  for (const std::string& f : fields) {
    for (char c : f) {
      if (!std::isalnum(static_cast<unsigned char>(c)) &&
          std::string_view("*,/-").find(c) == std::string_view::npos) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace halo::config::internal
