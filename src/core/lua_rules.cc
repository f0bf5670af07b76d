// The Lua flavour of <failover> rules, reduced to the two statements the reference documents:
//   Rules = Rules + { label=if_then("res","state",Action.x), _group="checker" }
//   Rules.disable("label")
// Halo does not embed Lua: anything else is refused with its position, never ignored.
#include <cctype>

#include "core/rule_text.h"

namespace halo::core::internal {
namespace {

constexpr const char* kUnsupported =
    "unsupported Lua statement (Halo supports Rules + {..=if_then(..)} and Rules.disable(..))";
constexpr const char* kLuaActions =
    "Action.stop, Action.stopstart, Action.wait, Action.restart or Action.swap";

bool isLuaNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

class LuaParser {
 public:
  explicit LuaParser(RuleText& text) : t_(text) {}

  Result<RuleSet> parse() {
    RuleSet set;
    t_.skipBlanks();
    while (!t_.atEnd()) {
      HALO_RETURN_IF_ERROR(parseStatement(&set));
      t_.skipBlanks();
    }
    return set;
  }

 private:
  std::string_view name() {
    t_.skipBlanks();
    return t_.takeWhile(isLuaNameChar);
  }

  bool accept(char c) {
    t_.skipBlanks();
    if (t_.peek() == c) {
      t_.advance();
      return true;
    }
    return false;
  }

  Status missing(const std::string& what) {
    t_.skipBlanks();
    return t_.error(t_.pos(), "missing " + what + ", found " + t_.describeNext());
  }

  Status parseStatement(RuleSet* set) {
    const TextPos at = t_.pos();
    if (name() != "Rules") {
      return t_.error(at, kUnsupported);
    }
    if (accept('=')) {
      if (name() != "Rules" || !accept('+') || !accept('{')) {
        return t_.error(at, kUnsupported);
      }
      return parseTable(set);
    }
    if (accept('.')) {
      if (name() != "disable" || !accept('(')) {
        return t_.error(at, kUnsupported);
      }
      TextPos label_at;
      HALO_ASSIGN_OR_RETURN(std::string label, parseString("the label of the rule", &label_at));
      if (!accept(')')) {
        return missing("')' after Rules.disable(\"" + label + "\"");
      }
      accept(';');
      set->disables.push_back({std::move(label), label_at.line, label_at.column});
      return okStatus();
    }
    return t_.error(at, kUnsupported);
  }

  Status parseTable(RuleSet* set) {
    std::vector<Rule> rules;
    std::string group;
    while (!accept('}')) {
      t_.skipBlanks();
      const TextPos at = t_.pos();
      const std::string key(name());
      if (key.empty()) {
        return t_.error(at, "unexpected " + t_.describeNext() +
                                " in Rules + {..} (expected label=if_then(\"resource\", \"state\", "
                                "Action.x), _group=\"name\" or '}')");
      }
      if (!accept('=')) {
        return missing("'=' after '" + key + "' in Rules + {..}");
      }
      if (key == "_group") {
        TextPos unused;
        HALO_ASSIGN_OR_RETURN(group, parseString("the group name", &unused));
      } else {
        HALO_ASSIGN_OR_RETURN(Rule rule, parseIfThen(key, at));
        rules.push_back(std::move(rule));
      }
      if (accept(',') || accept(';')) {
        continue;
      }
      if (!accept('}')) {
        return missing("',' or '}' in Rules + {..}");
      }
      break;
    }
    accept(';');
    for (Rule& r : rules) {
      r.group = group;
      set->rules.push_back(std::move(r));
    }
    return okStatus();
  }

  Result<Rule> parseIfThen(const std::string& label, TextPos at) {
    const std::string usage = "(expected " + label + "=if_then(\"resource\", \"state\", Action.x))";
    t_.skipBlanks();
    const TextPos call_at = t_.pos();
    if (name() != "if_then" || !accept('(')) {
      return t_.error(call_at, "missing if_then(..) for rule " + label + " " + usage);
    }
    Rule rule;
    rule.label = label;
    rule.line = at.line;
    rule.column = at.column;
    TextPos res_at;
    HALO_ASSIGN_OR_RETURN(std::string res, parseString("the resource of rule " + label, &res_at));
    HALO_ASSIGN_OR_RETURN(ResourceRef ref, parseResourceName(res, res_at, t_));
    if (!accept(',')) {
      return missing("',' after the resource of rule " + label);
    }
    TextPos state_at;
    HALO_ASSIGN_OR_RETURN(std::string state_name,
                          parseString("the state of rule " + label, &state_at));
    HALO_ASSIGN_OR_RETURN(ResourceState state, parseStateName(state_name, state_at, t_));
    if (!accept(',')) {
      return missing("',' after the state of rule " + label);
    }
    t_.skipBlanks();
    const TextPos action_at = t_.pos();
    std::string action(name());
    if (action == "Action" && accept('.')) {
      action += "." + std::string(name());
    }
    std::optional<ActionKind> kind;
    for (ActionKind k : {ActionKind::Stop, ActionKind::Stopstart, ActionKind::Wait,
                         ActionKind::Restart, ActionKind::Swap}) {
      if (action == std::string("Action.") + actionKindName(k)) {
        kind = k;
      }
    }
    if (!kind) {
      return t_.error(action_at, "unknown action '" + action + "' in rule " + label +
                                     " (expected " + kLuaActions + ")");
    }
    if (!accept(')')) {
      return missing("')' after the action of rule " + label);
    }
    rule.condition = makeCompare(std::move(ref), CompareOp::Eq, state);
    rule.action = RuleAction{*kind, std::nullopt};
    return rule;
  }

  // A "..." or '...' literal without escapes; `content_at` receives the first character's position.
  Result<std::string> parseString(const std::string& what, TextPos* content_at) {
    t_.skipBlanks();
    const char quote = t_.peek();
    if (quote != '"' && quote != '\'') {
      return t_.error(t_.pos(), "missing " + what + ", found " + t_.describeNext() +
                                    " (expected a quoted string)");
    }
    const TextPos open_at = t_.pos();
    t_.advance();
    *content_at = t_.pos();
    std::string value;
    while (!t_.atEnd() && t_.peek() != quote && t_.peek() != '\n') {
      value += t_.peek();
      t_.advance();
    }
    if (t_.peek() != quote) {
      return t_.error(open_at, std::string("unterminated string (expected a closing ") + quote +
                                   " on the same line)");
    }
    t_.advance();
    return value;
  }

  RuleText& t_;
};

}  // namespace

Result<RuleSet> parseLuaRules(RuleText& text) { return LuaParser(text).parse(); }

}  // namespace halo::core::internal
