#pragma once
// A parsed XML configuration file that remembers the real line of every node, so that every error
// can say "<file>:<line>: ..." even after macros have changed attribute values (internal).

#include <functional>
#include <memory>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "config/macros.h"

namespace halo::config::internal {

class XmlDocument {
 public:
  // Parses `xml` (UTF-8). Malformed input gives "<file>:<line>: malformed XML: <reason>"; so
  // does a document whose single top-level element is not `<root_name>`.
  static constexpr size_t kMaxBytes = 16 << 20;
  static constexpr int kMaxDepth = 32;

  static Result<std::unique_ptr<XmlDocument>> load(std::string_view xml, std::string file_name,
                                                   std::string_view root_name);

  const std::string& file() const { return file_; }
  pugi::xml_node root() const { return doc_.document_element(); }
  // 1-based line of an element or text node in the original input (0 if unknown).
  int lineOf(pugi::xml_node node) const;
  // invalidArgument("<file>:<line of node>: <what>").
  Status error(pugi::xml_node node, const std::string& what) const;

  // Expands macros in place in every attribute value and text node, in document order, skipping
  // the subtrees for which `skip` is true. Errors: "undefined macro %X% in attribute 'a'" or
  // "... in the text of <e>".
  Status expandMacros(const MacroExpander& expander,
                      const std::function<bool(pugi::xml_node)>& skip);

  // The document as it is now (after expansion), keeping the original layout and comments.
  std::string serialize() const;

 private:
  XmlDocument() = default;
  int lineAtOffset(ptrdiff_t offset) const;
  // Records the line of every element and text node; fails on absurd nesting so that the
  // recursive walks of the parsers stay bounded.
  Status indexLines();
  Status expandNode(pugi::xml_node node, const MacroExpander& expander,
                    const std::function<bool(pugi::xml_node)>& skip);

  std::string file_;
  std::vector<size_t> newlines_;  // Offsets of '\n' in the input, for offset -> line.
  pugi::xml_document doc_;
  // Filled once at load: values rewritten by macro expansion lose pugixml's offset information.
  std::unordered_map<const void*, int> lines_;
};

}  // namespace halo::config::internal
