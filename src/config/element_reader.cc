#include "config/element_reader.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "base/strings.h"
#include "config/duration.h"
#include "config/values.h"

namespace halo::config::internal {
namespace {

std::string listOf(std::initializer_list<std::string_view> names) {
  std::string out;
  for (std::string_view n : names) {
    out += out.empty() ? "" : ", ";
    out += n;
  }
  return out;
}

bool isBlank(const char* s) {
  for (; *s != '\0'; ++s) {
    if (!std::isspace(static_cast<unsigned char>(*s))) {
      return false;
    }
  }
  return true;
}

bool contains(std::initializer_list<std::string_view> names, std::string_view n) {
  for (std::string_view x : names) {
    if (x == n) {
      return true;
    }
  }
  return false;
}

}  // namespace

Status ElementReader::invalidValue(std::string_view attr, std::string_view value,
                                   const std::string& expected) const {
  return error(tag() + " attribute '" + std::string(attr) + "': invalid value '" +
               std::string(value) + "' (expected " + expected + ")");
}

Status ElementReader::missing(std::string_view attr) const {
  return error(tag() + ": missing required attribute '" + std::string(attr) + "'");
}

Status ElementReader::duplicateChild(pugi::xml_node dup, pugi::xml_node first) const {
  return doc_.error(dup, "duplicate <" + std::string(dup.name()) + "> in " + tag() +
                             " (only one is allowed; the first is at line " +
                             std::to_string(doc_.lineOf(first)) + ")");
}

Status ElementReader::checkAttributes(std::initializer_list<std::string_view> allowed) const {
  for (pugi::xml_attribute a = node_.first_attribute(); a; a = a.next_attribute()) {
    if (!contains(allowed, a.name())) {
      const std::string expected = allowed.size() == 0 ? tag() + " has no attributes"
                                                       : "expected one of: " + listOf(allowed);
      return error("unknown attribute '" + std::string(a.name()) + "' on " + tag() + " (" +
                   expected + ")");
    }
    // pugixml keeps repeated attributes; XML forbids them and the second would be ignored.
    for (pugi::xml_attribute b = node_.first_attribute(); b != a; b = b.next_attribute()) {
      if (std::string_view(a.name()) == b.name()) {
        return error("malformed XML: attribute '" + std::string(a.name()) + "' repeated on " +
                     tag());
      }
    }
  }
  return okStatus();
}

Result<std::vector<pugi::xml_node>> ElementReader::children(
    std::initializer_list<std::string_view> allowed,
    std::initializer_list<LegacyChild> legacy) const {
  std::vector<pugi::xml_node> out;
  for (pugi::xml_node c : node_.children()) {
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) {
      if (!isBlank(c.value())) {
        return doc_.error(c, "unexpected text in " + tag() + ": '" + trim(c.value()) + "'");
      }
      continue;
    }
    if (c.type() != pugi::node_element) {
      continue;  // comments
    }
    for (const LegacyChild& l : legacy) {
      if (l.name == c.name()) {
        return doc_.error(
            c, "<" + std::string(c.name()) + "> in " + tag() + ": " + std::string(l.message));
      }
    }
    if (!contains(allowed, c.name())) {
      const std::string expected = allowed.size() == 0 ? tag() + " has no child elements"
                                                       : "expected one of: " + listOf(allowed);
      return doc_.error(
          c, "unknown element <" + std::string(c.name()) + "> in " + tag() + " (" + expected + ")");
    }
    out.push_back(c);
  }
  return out;
}

Result<std::vector<std::pair<std::string, int>>> ElementReader::textBlocks() const {
  std::vector<std::pair<std::string, int>> out;
  for (pugi::xml_node c : node_.children()) {
    if (c.type() == pugi::node_element) {
      return doc_.error(c, "unknown element <" + std::string(c.name()) + "> in " + tag() + " (" +
                               tag() + " holds only rule text, usually in <![CDATA[ ... ]]>)");
    }
    if ((c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) && !isBlank(c.value())) {
      out.emplace_back(c.value(), doc_.lineOf(c));
    }
  }
  return out;
}

std::optional<std::string> ElementReader::get(std::string_view attr) const {
  pugi::xml_attribute a = node_.attribute(std::string(attr).c_str());
  if (!a) {
    return std::nullopt;
  }
  return std::string(a.value());
}

Status ElementReader::readRequired(std::string_view attr, std::string* out) const {
  if (!has(attr)) {
    return missing(attr);
  }
  return readString(attr, out);
}

Status ElementReader::readString(std::string_view attr, std::string* out) const {
  std::optional<std::string> v = get(attr);
  if (!v) {
    return okStatus();
  }
  if (trim(*v).empty()) {
    return invalidValue(attr, *v, "a non-empty value");
  }
  *out = *v;
  return okStatus();
}

Status ElementReader::readInt64(std::string_view attr, int64_t* out, int64_t min,
                                int64_t max) const {
  std::optional<std::string> v = get(attr);
  if (!v) {
    return okStatus();
  }
  std::optional<int64_t> n = parseInteger(*v);
  if (!n || *n < min || *n > max) {
    const std::string expected =
        max == INT64_MAX || max == INT32_MAX
            ? "an integer of at least " + std::to_string(min)
            : "an integer between " + std::to_string(min) + " and " + std::to_string(max);
    return invalidValue(attr, *v, expected);
  }
  *out = *n;
  return okStatus();
}

Status ElementReader::readInt(std::string_view attr, int* out, int64_t min, int64_t max) const {
  int64_t n = *out;
  HALO_RETURN_IF_ERROR(readInt64(attr, &n, min, std::min<int64_t>(max, INT32_MAX)));
  *out = static_cast<int>(n);
  return okStatus();
}

Status ElementReader::readPort(std::string_view attr, int* out) const {
  std::optional<std::string> v = get(attr);
  if (!v) {
    return okStatus();
  }
  std::optional<int64_t> n = parseInteger(*v);
  if (!n || *n < 1 || *n > 65535) {
    return invalidValue(attr, *v, "a port number between 1 and 65535");
  }
  *out = static_cast<int>(*n);
  return okStatus();
}

Status ElementReader::readPort(std::string_view attr, std::optional<int>* out) const {
  int port = 0;
  HALO_RETURN_IF_ERROR(readPort(attr, &port));
  if (port != 0) {
    *out = port;
  }
  return okStatus();
}

Status ElementReader::readSwitch(std::string_view attr, bool* out, SwitchStyle style) const {
  std::optional<std::string> v = get(attr);
  if (!v) {
    return okStatus();
  }
  if (*v == "on" || *v == "yes") {
    *out = true;
  } else if (*v == "off" || *v == "no") {
    *out = false;
  } else {
    return invalidValue(attr, *v, style == SwitchStyle::OnOff ? "on or off" : "yes or no");
  }
  return okStatus();
}

Status ElementReader::readDuration(std::string_view attr, Millis* out,
                                   std::string_view implicit_unit, Millis min, Millis max) const {
  std::optional<std::string> v = get(attr);
  if (!v) {
    return okStatus();
  }
  Result<Millis> d = parseDuration(*v, implicit_unit);
  if (!d.ok()) {
    return error(tag() + " attribute '" + std::string(attr) + "': " + d.status().message());
  }
  if (*d < min) {
    return invalidValue(attr, *v, "a duration of at least " + formatDuration(min));
  }
  if (*d > max) {
    return invalidValue(attr, *v, "a duration of at most " + formatDuration(max));
  }
  *out = *d;
  return okStatus();
}

Status ElementReader::readIp(std::string_view attr, std::string* out) const {
  std::optional<std::string> v = get(attr);
  if (!v) {
    return okStatus();
  }
  if (!isIpAddress(*v)) {
    return invalidValue(attr, *v, "an IPv4 or IPv6 address");
  }
  *out = *v;
  return okStatus();
}

Status ElementReader::readIpOrHost(std::string_view attr, std::string* out) const {
  std::optional<std::string> v = get(attr);
  if (!v) {
    return okStatus();
  }
  if (!isIpOrHostName(*v)) {
    return invalidValue(attr, *v, "an IPv4 or IPv6 address or a host name");
  }
  *out = *v;
  return okStatus();
}

Status ElementReader::readIdent(std::string_view attr, std::string* out) const {
  std::optional<std::string> v = get(attr);
  if (!v) {
    return okStatus();
  }
  if (!isResourceIdent(*v)) {
    return invalidValue(attr, *v, "a name of letters, digits and _ - . : @");
  }
  *out = *v;
  return okStatus();
}

}  // namespace halo::config::internal
