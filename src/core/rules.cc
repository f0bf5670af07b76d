#include "core/rules.h"

#include <map>

#include "base/strings.h"
#include "core/rule_text.h"

namespace halo::core {
namespace {

using internal::RuleText;
using internal::TextPos;

// Conditions come from untrusted configuration; the bound keeps the recursive parser and
// evaluator far from the stack limit.
constexpr int kMaxDepth = 64;

constexpr const char* kActions = "stop(), stopstart(), wait(), restart(), swap() or resource=state";
constexpr const char* kOperands = "resource == state, cluster() == up|down, '!' or '('";

std::optional<ActionKind> commandAction(std::string_view word) {
  for (ActionKind k : {ActionKind::Stop, ActionKind::Stopstart, ActionKind::Wait,
                       ActionKind::Restart, ActionKind::Swap}) {
    if (word == actionKindName(k)) {
      return k;
    }
  }
  return std::nullopt;
}

// Recursive descent over the plain grammar; `||` binds looser than `&&`, `!` binds tightest.
class PlainParser {
 public:
  explicit PlainParser(RuleText& text) : t_(text) {}

  Result<RuleSet> parse() {
    RuleSet set;
    t_.skipBlanks();
    while (!t_.atEnd()) {
      HALO_ASSIGN_OR_RETURN(Rule rule, parseRule());
      set.rules.push_back(std::move(rule));
      t_.skipBlanks();
    }
    return set;
  }

 private:
  Status missing(const std::string& what) {
    t_.skipBlanks();
    return t_.error(t_.pos(), "missing " + what);
  }

  // Skips blanks, then consumes `token` if it is next.
  bool accept(std::string_view token) {
    t_.skipBlanks();
    if (t_.startsWith(token)) {
      t_.advance(token.size());
      return true;
    }
    return false;
  }

  Result<Rule> parseRule() {
    Rule rule;
    const TextPos at = t_.pos();
    rule.label = std::string(t_.takeWhile(internal::isLabelChar));
    if (rule.label.empty()) {
      return t_.error(at, "unexpected " + t_.describeNext() +
                              " where a rule starts (expected label: if (condition) then action;)");
    }
    rule.line = at.line;
    rule.column = at.column;
    label_ = rule.label;
    if (!accept(":")) {
      return missing("':' after the rule label '" + label_ + "'");
    }
    t_.skipBlanks();
    const TextPos if_at = t_.pos();
    if (t_.takeWhile(internal::isLabelChar) != "if") {
      return t_.error(if_at, "missing 'if' after '" + label_ + ":' (expected " + label_ +
                                 ": if (condition) then action;)");
    }
    if (!accept("(")) {
      return missing("'(' after 'if' in rule " + label_);
    }
    HALO_ASSIGN_OR_RETURN(rule.condition, parseOr(1));
    if (!accept(")")) {
      return missing("')' after the condition of rule " + label_ + ", found " + t_.describeNext());
    }
    t_.skipBlanks();
    const TextPos then_at = t_.pos();
    if (t_.takeWhile(internal::isLabelChar) != "then") {
      return t_.error(then_at, "missing 'then' after the condition of rule " + label_);
    }
    HALO_ASSIGN_OR_RETURN(rule.action, parseAction());
    if (!accept(";")) {
      return missing("';' after the action of rule " + label_);
    }
    return rule;
  }

  Result<ExprPtr> parseOr(int depth) {
    HALO_ASSIGN_OR_RETURN(ExprPtr lhs, parseAnd(depth));
    while (true) {
      t_.skipBlanks();
      if (t_.startsWith("||")) {
        t_.advance(2);
        HALO_ASSIGN_OR_RETURN(ExprPtr rhs, parseAnd(depth));
        lhs = makeOr(std::move(lhs), std::move(rhs));
      } else if (t_.peek() == '|') {
        return t_.error(t_.pos(), "unexpected '|' in rule " + label_ + " (expected '||')");
      } else {
        return lhs;
      }
    }
  }

  Result<ExprPtr> parseAnd(int depth) {
    HALO_ASSIGN_OR_RETURN(ExprPtr lhs, parseUnary(depth));
    while (true) {
      t_.skipBlanks();
      if (t_.startsWith("&&")) {
        t_.advance(2);
        HALO_ASSIGN_OR_RETURN(ExprPtr rhs, parseUnary(depth));
        lhs = makeAnd(std::move(lhs), std::move(rhs));
      } else if (t_.peek() == '&') {
        return t_.error(t_.pos(), "unexpected '&' in rule " + label_ + " (expected '&&')");
      } else {
        return lhs;
      }
    }
  }

  Result<ExprPtr> parseUnary(int depth) {
    t_.skipBlanks();
    if (depth > kMaxDepth) {
      return t_.error(t_.pos(), "condition of rule " + label_ +
                                    " nested too deeply (expected at most " +
                                    std::to_string(kMaxDepth) + " levels of '(' and '!')");
    }
    if (t_.peek() == '!' && t_.peek(1) != '=') {
      t_.advance();
      HALO_ASSIGN_OR_RETURN(ExprPtr operand, parseUnary(depth + 1));
      return makeNot(std::move(operand));
    }
    if (t_.peek() == '(') {
      t_.advance();
      HALO_ASSIGN_OR_RETURN(ExprPtr inner, parseOr(depth + 1));
      if (!accept(")")) {
        return missing("')' in the condition of rule " + label_ + ", found " + t_.describeNext());
      }
      return inner;
    }
    return parseComparison();
  }

  Result<ExprPtr> parseComparison() {
    const TextPos at = t_.pos();
    const std::string_view word = t_.takeWhile(internal::isResourceChar);
    if (word.empty()) {
      return t_.error(at, "unexpected " + t_.describeNext() + " in the condition of rule " +
                              label_ + " (expected " + kOperands + ")");
    }
    if (word == "cluster") {
      if (!accept("(") || !accept(")")) {
        return missing("'()' after cluster in rule " + label_);
      }
      HALO_ASSIGN_OR_RETURN(CompareOp op, parseOp("cluster()"));
      t_.skipBlanks();
      const TextPos state_at = t_.pos();
      HALO_ASSIGN_OR_RETURN(ResourceState state, parseState(op));
      if (state != ResourceState::Up && state != ResourceState::Down) {
        return t_.error(state_at, std::string("cluster() is only up or down, not '") +
                                      resourceStateName(state) + "' (expected up or down)");
      }
      return makeCluster(op, state);
    }
    HALO_ASSIGN_OR_RETURN(ResourceRef ref, internal::parseResourceName(word, at, t_));
    HALO_ASSIGN_OR_RETURN(CompareOp op, parseOp(ref.toString()));
    HALO_ASSIGN_OR_RETURN(ResourceState state, parseState(op));
    return makeCompare(std::move(ref), op, state);
  }

  Result<CompareOp> parseOp(const std::string& after) {
    if (accept("==")) {
      return CompareOp::Eq;
    }
    if (accept("!=")) {
      return CompareOp::Ne;
    }
    return t_.error(t_.pos(), "unexpected " + t_.describeNext() + " after " + after + " in rule " +
                                  label_ + " (expected '==' or '!=')");
  }

  Result<ResourceState> parseState(CompareOp op) {
    t_.skipBlanks();
    const TextPos at = t_.pos();
    const std::string_view word = t_.takeWhile(internal::isLabelChar);
    if (word.empty()) {
      return t_.error(at, std::string("missing state after '") +
                              (op == CompareOp::Eq ? "==" : "!=") +
                              "' (expected init, down, up or unknown)");
    }
    return internal::parseStateName(word, at, t_);
  }

  Result<RuleAction> parseAction() {
    t_.skipBlanks();
    const TextPos at = t_.pos();
    const std::string_view word = t_.takeWhile(internal::isResourceChar);
    if (word.empty()) {
      return t_.error(
          at, "missing action after 'then' in rule " + label_ + " (expected " + kActions + ")");
    }
    if (std::optional<ActionKind> kind = commandAction(word)) {
      if (!accept("(") || !accept(")")) {
        return missing("'()' after action '" + std::string(word) + "' in rule " + label_);
      }
      return RuleAction{*kind, std::nullopt};
    }
    if (word.find('.') == std::string_view::npos) {
      return t_.error(at, "unknown action '" + std::string(word) + "' in rule " + label_ +
                              " (expected " + kActions + ")");
    }
    HALO_ASSIGN_OR_RETURN(ResourceRef ref, internal::parseResourceName(word, at, t_));
    if (ref.kind != IdKind::Name) {
      return t_.error(at, "cannot assign wildcard resource " + ref.toString() + " in rule " +
                              label_ + " (expected a named resource)");
    }
    if (ref.side == Side::Remote) {
      return t_.error(at, "cannot assign remote resource " + ref.toString() + " in rule " + label_ +
                              " (expected a local resource)");
    }
    t_.skipBlanks();
    if (t_.peek() != '=' || t_.peek(1) == '=') {
      return missing("'=' after " + ref.toString() + " in the action of rule " + label_ +
                     " (expected resource=state)");
    }
    t_.advance();
    t_.skipBlanks();
    const TextPos state_at = t_.pos();
    const std::string_view state_word = t_.takeWhile(internal::isLabelChar);
    if (state_word.empty()) {
      return t_.error(state_at, "missing state after '=' (expected init, down, up or unknown)");
    }
    HALO_ASSIGN_OR_RETURN(ResourceState state, internal::parseStateName(state_word, state_at, t_));
    return RuleAction{ActionKind::Assign, Assignment{std::move(ref), state}};
  }

  RuleText& t_;
  std::string label_;  // of the rule being parsed, for messages
};

bool isLuaBlock(std::string_view text) {
  const size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) {
    return false;
  }
  std::string_view line = text.substr(start, text.find('\n', start) - start);
  if (!line.starts_with("--")) {
    return false;
  }
  return toLower(trim(line.substr(2))) == "lua rules";
}

std::string formatOperand(const Expr& e, Expr::Kind parent) {
  const bool needs_parens = e.kind == Expr::Kind::Or && parent == Expr::Kind::And;
  return needs_parens ? "(" + formatExpr(e) + ")" : formatExpr(e);
}

}  // namespace

std::string ResourceRef::toString() const {
  std::string s = side == Side::Remote ? "remote." : "";
  s += cls + ".";
  switch (kind) {
    case IdKind::Name: return s + id;
    case IdKind::All: return s + "*";
    case IdKind::Any: return s + "?";
  }
  return s;
}

ExprPtr makeCompare(ResourceRef resource, CompareOp op, ResourceState state) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::Compare;
  e->resource = std::move(resource);
  e->op = op;
  e->state = state;
  return e;
}

ExprPtr makeCluster(CompareOp op, ResourceState state) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::Cluster;
  e->op = op;
  e->state = state;
  return e;
}

ExprPtr makeAnd(ExprPtr lhs, ExprPtr rhs) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::And;
  e->lhs = std::move(lhs);
  e->rhs = std::move(rhs);
  return e;
}

ExprPtr makeOr(ExprPtr lhs, ExprPtr rhs) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::Or;
  e->lhs = std::move(lhs);
  e->rhs = std::move(rhs);
  return e;
}

ExprPtr makeNot(ExprPtr operand) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::Not;
  e->lhs = std::move(operand);
  return e;
}

std::string formatExpr(const Expr& e) {
  const char* op = e.op == CompareOp::Eq ? " == " : " != ";
  switch (e.kind) {
    case Expr::Kind::Or: return formatExpr(*e.lhs) + " || " + formatExpr(*e.rhs);
    case Expr::Kind::And:
      return formatOperand(*e.lhs, e.kind) + " && " + formatOperand(*e.rhs, e.kind);
    case Expr::Kind::Not: return "!(" + formatExpr(*e.lhs) + ")";
    case Expr::Kind::Compare: return e.resource.toString() + op + resourceStateName(e.state);
    case Expr::Kind::Cluster: return std::string("cluster()") + op + resourceStateName(e.state);
  }
  return "";
}

const char* actionKindName(ActionKind kind) {
  switch (kind) {
    case ActionKind::Stop: return "stop";
    case ActionKind::Stopstart: return "stopstart";
    case ActionKind::Wait: return "wait";
    case ActionKind::Restart: return "restart";
    case ActionKind::Swap: return "swap";
    case ActionKind::Assign: return "set";
  }
  return "wait";
}

std::string formatRule(const Rule& rule) {
  std::string action;
  if (rule.action.kind == ActionKind::Assign && rule.action.assignment) {
    action = rule.action.assignment->target.toString() + "=" +
             resourceStateName(rule.action.assignment->state);
  } else {
    action = std::string(actionKindName(rule.action.kind)) + "()";
  }
  return rule.label + ": if (" + formatExpr(*rule.condition) + ") then " + action + ";";
}

Result<RuleSet> parseRules(std::string_view text, int first_line, const std::string& file,
                           int first_column) {
  RuleText t(text, first_line, first_column, file);
  Result<RuleSet> parsed = isLuaBlock(text) ? internal::parseLuaRules(t) : PlainParser(t).parse();
  if (!parsed.ok()) {
    return parsed;
  }
  std::map<std::string, int> seen;  // label -> line
  for (const Rule& r : parsed->rules) {
    const TextPos at{r.line, r.column};
    if (r.label == kImplicitWakeupLabel) {
      return t.error(at, "rule label '" + r.label + "' is reserved (expected another label)");
    }
    auto [it, fresh] = seen.emplace(r.label, r.line);
    if (!fresh) {
      return t.error(at, "duplicate rule label '" + r.label +
                             "' (expected a label not already used at line " +
                             std::to_string(it->second) + ")");
    }
  }
  return parsed;
}

}  // namespace halo::core
