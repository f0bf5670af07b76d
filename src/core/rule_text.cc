#include "core/rule_text.h"

#include <cctype>

namespace halo::core::internal {
namespace {

bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool isClassName(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) {
    return false;
  }
  for (char c : s) {
    if (!isAlnum(c) && c != '_') {
      return false;
    }
  }
  return true;
}

bool isIdName(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (c == '*' || c == '?' || !isResourceChar(c)) {
      return false;
    }
  }
  return true;
}

}  // namespace

RuleText::RuleText(std::string_view text, int first_line, int first_column, const std::string& file)
    : text_(text), pos_{first_line, first_column}, file_(file) {}

char RuleText::peek(size_t ahead) const {
  return at_ + ahead < text_.size() ? text_[at_ + ahead] : '\0';
}

void RuleText::advance(size_t n) {
  for (size_t i = 0; i < n && !atEnd(); ++i) {
    if (text_[at_] == '\n') {
      ++pos_.line;
      pos_.column = 1;
    } else {
      ++pos_.column;
    }
    ++at_;
  }
}

void RuleText::skipBlanks() {
  while (!atEnd()) {
    if (std::isspace(static_cast<unsigned char>(peek())) != 0) {
      advance();
    } else if (startsWith("--")) {
      while (!atEnd() && peek() != '\n') {
        advance();
      }
    } else {
      return;
    }
  }
}

std::string_view RuleText::takeWhile(const std::function<bool(char)>& keep) {
  const size_t start = at_;
  while (!atEnd() && keep(peek()) && !startsWith("--")) {
    advance();
  }
  return text_.substr(start, at_ - start);
}

Status RuleText::error(TextPos at, const std::string& what) const {
  return invalidArgument(file_ + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                         ": " + what);
}

std::string RuleText::describeNext() const {
  if (atEnd()) {
    return "the end of the rules";
  }
  size_t end = at_;
  while (end < text_.size() && isResourceChar(text_[end]) && end - at_ < 40) {
    ++end;
  }
  if (end == at_) {
    end = at_ + 1;
  }
  return "'" + std::string(text_.substr(at_, end - at_)) + "'";
}

bool isResourceChar(char c) {
  return isAlnum(c) || std::string_view("_-.:@*?").find(c) != std::string_view::npos;
}

bool isLabelChar(char c) {
  return isAlnum(c) || std::string_view("_-.@").find(c) != std::string_view::npos;
}

Result<ResourceRef> parseResourceName(std::string_view word, TextPos at, const RuleText& text) {
  ResourceRef ref;
  std::string_view rest = word;
  int offset = 0;
  for (auto [prefix, side] : {std::pair{std::string_view("local."), Side::Local},
                              std::pair{std::string_view("remote."), Side::Remote}}) {
    if (rest.starts_with(prefix)) {
      ref.side = side;
      rest.remove_prefix(prefix.size());
      offset = static_cast<int>(prefix.size());
    }
  }
  const size_t dot = rest.find('.');
  if (dot == std::string_view::npos) {
    return text.error(at, "invalid resource '" + std::string(word) +
                              "' (expected [local.|remote.]class.id, e.g. tcp.web)");
  }
  const std::string_view cls = rest.substr(0, dot);
  const std::string_view id = rest.substr(dot + 1);
  if (!isClassName(cls)) {
    return text.error(at.shifted(offset), "invalid resource class '" + std::string(cls) + "' in '" +
                                              std::string(word) +
                                              "' (expected a name of letters, digits and _)");
  }
  ref.cls = std::string(cls);
  if (id == "*") {
    ref.kind = IdKind::All;
  } else if (id == "?") {
    ref.kind = IdKind::Any;
  } else if (isIdName(id)) {
    ref.id = std::string(id);
  } else {
    return text.error(at.shifted(offset + static_cast<int>(dot) + 1),
                      "invalid resource id '" + std::string(id) + "' in '" + std::string(word) +
                          "' (expected *, ? or a name of letters, digits and _ - . : @)");
  }
  return ref;
}

Result<ResourceState> parseStateName(std::string_view word, TextPos at, const RuleText& text) {
  Result<ResourceState> state = parseResourceState(word);
  if (word.empty() || !state.ok()) {
    return text.error(
        at, "unknown state '" + std::string(word) + "' (expected init, down, up or unknown)");
  }
  return *state;
}

}  // namespace halo::core::internal
