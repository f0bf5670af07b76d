#pragma once
// Internal to the rule parsers (rules.cc, lua_rules.cc): a cursor over a rule block that knows
// the file position of every character, and the lexical pieces both flavours share.

#include <functional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "core/rules.h"

namespace halo::core::internal {

struct TextPos {
  int line = 0;
  int column = 0;
  TextPos shifted(int columns) const { return {line, column + columns}; }
};

class RuleText {
 public:
  RuleText(std::string_view text, int first_line, int first_column, const std::string& file);

  bool atEnd() const { return at_ >= text_.size(); }
  // '\0' past the end.
  char peek(size_t ahead = 0) const;
  bool startsWith(std::string_view s) const { return text_.substr(at_).starts_with(s); }
  void advance(size_t n = 1);
  TextPos pos() const { return pos_; }
  // Skips whitespace and `--` comments (both flavours use Lua's comment syntax).
  void skipBlanks();
  // Consumes the longest run of characters satisfying `keep`; stops before a `--` comment.
  std::string_view takeWhile(const std::function<bool(char)>& keep);
  // "<file>:<line>:<column>: what".
  Status error(TextPos at, const std::string& what) const;
  // What the cursor is looking at, for messages: "'xyz'", "'('" or "the end of the rules".
  std::string describeNext() const;

 private:
  std::string_view text_;
  size_t at_ = 0;
  TextPos pos_;
  const std::string& file_;
};

// Letters, digits and _ - . : @ (the characters of a checker ident, config/values.h), plus the
// wildcards * and ?, which parseResourceName then checks.
bool isResourceChar(char c);
// Letters, digits and _ - . @: a checker ident fits in a label (t_<ident>); ':' ends the label.
bool isLabelChar(char c);

// "[local.|remote.]class.id" with id "*", "?" or a name. `at` is where `word` starts, for errors.
Result<ResourceRef> parseResourceName(std::string_view word, TextPos at, const RuleText& text);
// "init", "down", "up" or "unknown" (any case).
Result<ResourceState> parseStateName(std::string_view word, TextPos at, const RuleText& text);

// The Lua flavour; `text` starts at the `--Lua Rules` line.
Result<RuleSet> parseLuaRules(RuleText& text);

}  // namespace halo::core::internal
