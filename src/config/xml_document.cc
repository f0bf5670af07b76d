#include "config/xml_document.h"

#include <algorithm>
#include <sstream>

namespace halo::config::internal {
namespace {

constexpr unsigned kParseFlags = pugi::parse_default | pugi::parse_declaration |
                                 pugi::parse_doctype | pugi::parse_comments | pugi::parse_ws_pcdata;

bool isText(pugi::xml_node n) {
  return n.type() == pugi::node_pcdata || n.type() == pugi::node_cdata;
}

}  // namespace

Result<std::unique_ptr<XmlDocument>> XmlDocument::load(std::string_view xml, std::string file_name,
                                                       std::string_view root_name) {
  std::unique_ptr<XmlDocument> d(new XmlDocument());
  d->file_ = std::move(file_name);
  if (xml.size() > kMaxBytes) {
    return invalidArgument(d->file_ + ":1: file too large (" + std::to_string(xml.size()) +
                           " bytes; expected at most 16 MiB)");
  }
  for (size_t i = 0; i < xml.size(); ++i) {
    if (xml[i] == '\n') {
      d->newlines_.push_back(i);
    }
  }
  // encoding_utf8 keeps pugixml from converting the buffer, so its offsets are offsets in `xml`.
  pugi::xml_parse_result r =
      d->doc_.load_buffer(xml.data(), xml.size(), kParseFlags, pugi::encoding_utf8);
  if (!r) {
    return invalidArgument(d->file_ + ":" + std::to_string(d->lineAtOffset(r.offset)) +
                           ": malformed XML: " + r.description());
  }
  HALO_RETURN_IF_ERROR(d->indexLines());
  // pugixml drops text outside the root element; a stray word there is a typo worth reporting.
  const size_t bom = xml.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
  const size_t first = xml.find_first_not_of(" \t\r\n", bom);
  const size_t last = xml.find_last_not_of(" \t\r\n");
  for (size_t at : {first, last}) {
    if (at != std::string_view::npos && xml[at] != (at == first ? '<' : '>')) {
      return invalidArgument(d->file_ + ":" + std::to_string(d->lineAtOffset(at)) +
                             ": malformed XML: text outside the root element");
    }
  }
  pugi::xml_node root;
  for (pugi::xml_node n : d->doc_.children()) {
    if (n.type() == pugi::node_element) {
      if (root) {
        return d->error(n, "malformed XML: unexpected element <" + std::string(n.name()) +
                               "> after the root element <" + root.name() + ">");
      }
      root = n;
    }
  }
  if (root.name() != root_name) {
    return d->error(root, "malformed XML: the root element must be <" + std::string(root_name) +
                              ">, not <" + root.name() + ">");
  }
  return d;
}

int XmlDocument::lineAtOffset(ptrdiff_t offset) const {
  if (offset < 0) {
    return 0;
  }
  auto it = std::lower_bound(newlines_.begin(), newlines_.end(), static_cast<size_t>(offset));
  return 1 + static_cast<int>(it - newlines_.begin());
}

Status XmlDocument::indexLines() {
  // Iterative pre-order walk: the depth limit is checked before anything recurses.
  pugi::xml_node n = doc_.first_child();
  int depth = 1;
  while (n) {
    if (n.type() == pugi::node_element || isText(n)) {
      lines_[n.internal_object()] = lineAtOffset(n.offset_debug());
    }
    if (n.type() == pugi::node_element && n.first_child()) {
      if (++depth > kMaxDepth) {
        return error(n, "malformed XML: elements nested deeper than " + std::to_string(kMaxDepth) +
                            " levels");
      }
      n = n.first_child();
      continue;
    }
    while (n && !n.next_sibling()) {
      n = n.parent();
      --depth;
      if (n.type() == pugi::node_document) {
        return okStatus();
      }
    }
    if (n) {
      n = n.next_sibling();
    }
  }
  return okStatus();
}

int XmlDocument::lineOf(pugi::xml_node node) const {
  auto it = lines_.find(node.internal_object());
  return it == lines_.end() ? 0 : it->second;
}

Status XmlDocument::error(pugi::xml_node node, const std::string& what) const {
  return invalidArgument(file_ + ":" + std::to_string(lineOf(node)) + ": " + what);
}

Status XmlDocument::expandMacros(const MacroExpander& expander,
                                 const std::function<bool(pugi::xml_node)>& skip) {
  return expandNode(doc_.document_element(), expander, skip);
}

Status XmlDocument::expandNode(pugi::xml_node node, const MacroExpander& expander,
                               const std::function<bool(pugi::xml_node)>& skip) {
  if (skip(node)) {
    return okStatus();
  }
  for (pugi::xml_attribute a : node.attributes()) {
    Result<std::string> v = expander.expand(a.value());
    if (!v.ok()) {
      return error(node, v.status().message() + " in attribute '" + a.name() + "'");
    }
    a.set_value(v->c_str());
  }
  for (pugi::xml_node child : node.children()) {
    if (child.type() == pugi::node_element) {
      HALO_RETURN_IF_ERROR(expandNode(child, expander, skip));
    } else if (isText(child)) {
      Result<std::string> v = expander.expand(child.value());
      if (!v.ok()) {
        return error(child, v.status().message() + " in the text of <" + node.name() + ">");
      }
      child.set_value(v->c_str());
    }
  }
  return okStatus();
}

std::string XmlDocument::serialize() const {
  std::ostringstream out;
  // Top-level whitespace is not kept by pugixml, so put each top-level node on its own line.
  for (pugi::xml_node n : doc_.children()) {
    n.print(out, "", pugi::format_raw | pugi::format_no_declaration);
    out << '\n';
  }
  return out.str();
}

}  // namespace halo::config::internal
