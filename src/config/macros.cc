#include "config/macros.h"

#include <cctype>

extern char** environ;  // NOLINT: POSIX declares it nowhere in a header C++ can rely on.

namespace halo::config {
namespace {

bool isIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool isIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

}  // namespace

Environment processEnvironment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) {
      continue;
    }
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  // Every path derives from HALO_ROOT (DESIGN 2): "%HALO_ROOT%/data" means /data on a server
  // where it is not set.
  env.emplace("HALO_ROOT", "");
  return env;
}

bool isIdentifier(std::string_view name) {
  if (name.empty() || !isIdentStart(name[0])) {
    return false;
  }
  for (char c : name) {
    if (!isIdentChar(c)) {
      return false;
    }
  }
  return true;
}

MacroExpander::MacroExpander(const std::vector<std::pair<std::string, std::string>>& macros,
                             const Environment& env)
    : values_(env.begin(), env.end()) {
  for (const auto& [name, value] : macros) {
    values_[name] = value;
  }
}

Result<std::string> MacroExpander::expand(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != '%') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '%') {
      out += '%';
      i += 2;
      continue;
    }
    size_t end = i + 1;
    while (end < text.size() && isIdentChar(text[end])) {
      ++end;
    }
    if (end == i + 1 || end >= text.size() || text[end] != '%' || !isIdentStart(text[i + 1])) {
      out += '%';
      ++i;
      continue;
    }
    const std::string_view name = text.substr(i + 1, end - i - 1);
    auto it = values_.find(name);
    if (it == values_.end()) {
      return invalidArgument("undefined macro %" + std::string(name) + "%");
    }
    out += it->second;
    i = end + 1;
  }
  return out;
}

}  // namespace halo::config
