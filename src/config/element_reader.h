#pragma once
// Typed, validated access to one element's attributes and children. Every failure is a Status in
// the house format "<file>:<line>: <element> attribute 'a': invalid value 'v' (expected ...)"
// (internal).

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "config/xml_document.h"

namespace halo::config::internal {

// How a boolean attribute is spelled in the reference; both spellings are accepted everywhere.
enum class SwitchStyle { OnOff, YesNo };

// A child element that older SafeKit versions accepted, refused with an explanation.
struct LegacyChild {
  std::string_view name;
  std::string_view message;
};

class ElementReader {
 public:
  ElementReader(const XmlDocument& doc, pugi::xml_node node) : doc_(doc), node_(node) {}

  pugi::xml_node node() const { return node_; }
  int line() const { return doc_.lineOf(node_); }
  // "<heart>", the spelling used in messages.
  std::string tag() const { return "<" + std::string(node_.name()) + ">"; }

  // "<file>:<line>: <what>".
  Status error(const std::string& what) const { return doc_.error(node_, what); }
  Status invalidValue(std::string_view attr, std::string_view value,
                      const std::string& expected) const;
  Status missing(std::string_view attr) const;
  // "duplicate <x> in <this> (only one is allowed; the first is at line N)".
  Status duplicateChild(pugi::xml_node dup, pugi::xml_node first) const;

  // Fails on the first attribute not in `allowed`, or given twice.
  Status checkAttributes(std::initializer_list<std::string_view> allowed) const;
  // The element children in document order; fails on an unknown or legacy element or on text.
  Result<std::vector<pugi::xml_node>> children(
      std::initializer_list<std::string_view> allowed,
      std::initializer_list<LegacyChild> legacy = {}) const;
  // The text and CDATA blocks that are not blank, with their lines; fails on child elements.
  Result<std::vector<std::pair<std::string, int>>> textBlocks() const;

  bool has(std::string_view attr) const { return get(attr).has_value(); }
  std::optional<std::string> get(std::string_view attr) const;

  // The readers leave *out unchanged when the attribute is absent, so it keeps its default.
  Status readRequired(std::string_view attr, std::string* out) const;  // present, non-empty
  Status readString(std::string_view attr, std::string* out) const;    // non-empty if present
  Status readInt(std::string_view attr, int* out, int64_t min, int64_t max) const;
  Status readInt64(std::string_view attr, int64_t* out, int64_t min, int64_t max) const;
  Status readPort(std::string_view attr, int* out) const;
  Status readPort(std::string_view attr, std::optional<int>* out) const;
  Status readSwitch(std::string_view attr, bool* out, SwitchStyle style = SwitchStyle::OnOff) const;
  // `min`/`max` bound the result; "0" passes only when min is 0.
  Status readDuration(std::string_view attr, Millis* out, std::string_view implicit_unit,
                      Millis min, Millis max = Millis::max()) const;
  Status readIp(std::string_view attr, std::string* out) const;
  Status readIpOrHost(std::string_view attr, std::string* out) const;
  Status readIdent(std::string_view attr, std::string* out) const;

  template <typename E>
  Status readEnum(std::string_view attr, E* out,
                  std::initializer_list<std::pair<std::string_view, E>> values) const {
    std::optional<std::string> v = get(attr);
    if (!v) {
      return okStatus();
    }
    std::string names;
    for (const auto& [name, value] : values) {
      if (*v == name) {
        *out = value;
        return okStatus();
      }
      names += names.empty() ? "" : ", ";
      names += name;
    }
    return invalidValue(attr, *v, "one of: " + names);
  }

 private:
  const XmlDocument& doc_;
  pugi::xml_node node_;
};

}  // namespace halo::config::internal
