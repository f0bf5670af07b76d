#pragma once
// Failover rules (reference 3.2.12): `label: if (expression) then action;` over resources, and
// the minimal Lua flavour (`--Lua Rules`). This file holds the syntax tree and the parser; the
// grammar and its semantics are documented in docs/failover-rules.md.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "core/resource_state.h"

namespace halo::core {

// Mirror rules may read the peer's resources (exchanged on heartbeats); unprefixed is local.
enum class Side { Local, Remote };

// `class.name`, `class.*` (every resource of the class) or `class.?` (any resource of it).
enum class IdKind { Name, All, Any };

struct ResourceRef {
  Side side = Side::Local;
  std::string cls;  // "tcp", "heartbeat", "rfs"
  IdKind kind = IdKind::Name;
  std::string id;  // IdKind::Name only: "web", "192.168.1.10", "uptodate"

  // "remote.tcp.web", "ip.?": the rule-text spelling.
  std::string toString() const;
  bool operator==(const ResourceRef&) const = default;
};

enum class CompareOp { Eq, Ne };

struct Expr;
// Shared and immutable, so rules copy cheaply (built-ins are copied into every rule set).
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Kind { Or, And, Not, Compare, Cluster };
  Kind kind = Kind::Compare;
  ExprPtr lhs;                                   // Or, And, Not
  ExprPtr rhs;                                   // Or, And
  ResourceRef resource;                          // Compare
  CompareOp op = CompareOp::Eq;                  // Compare, Cluster
  ResourceState state = ResourceState::Unknown;  // Compare; Cluster: Up or Down
};

ExprPtr makeCompare(ResourceRef resource, CompareOp op, ResourceState state);
ExprPtr makeCluster(CompareOp op, ResourceState state);
ExprPtr makeAnd(ExprPtr lhs, ExprPtr rhs);
ExprPtr makeOr(ExprPtr lhs, ExprPtr rhs);
ExprPtr makeNot(ExprPtr operand);

// Canonical text, re-parsable: "tcp.web == down && !(cluster() == up)".
std::string formatExpr(const Expr& expr);

enum class ActionKind { Stop, Stopstart, Wait, Restart, Swap, Assign };
// "stop", "stopstart", "wait", "restart", "swap", "set".
const char* actionKindName(ActionKind kind);

struct Assignment {
  ResourceRef target;  // always a local, named resource
  ResourceState state = ResourceState::Up;
  bool operator==(const Assignment&) const = default;
};

struct RuleAction {
  ActionKind kind = ActionKind::Wait;
  std::optional<Assignment> assignment;  // ActionKind::Assign only
  bool operator==(const RuleAction&) const = default;
};

// Who owns a rule decides whether the user may replace or disable it: the replication's rules
// guard data integrity and are never changed (reference 3.2.12).
enum class RuleOwner { User, Checker, Rfs };

struct Rule {
  std::string label;
  ExprPtr condition;
  RuleAction action;
  RuleOwner owner = RuleOwner::User;
  std::string group;  // Lua `_group`, informational
  int line = 0;       // position of the label in the file; 0 for built-in rules
  int column = 0;
};

// "label: if (condition) then action;"
std::string formatRule(const Rule& rule);

// `Rules.disable("label")` of the Lua flavour.
struct RuleDisable {
  std::string label;
  int line = 0;
  int column = 0;
};

struct RuleSet {
  std::vector<Rule> rules;            // in text order
  std::vector<RuleDisable> disables;  // applied after `rules` are added (see moduleRules)
};

// Label of the engine's own wakeup decision; reserved, no rule may use it.
inline constexpr std::string_view kImplicitWakeupLabel = "Implicit_wakeup";

// Parses one <failover> text block. `first_line`/`first_column` locate the block's first character
// in `file`, so errors are real positions there: "<file>:<line>:<column>: <what> (expected ...)".
// Labels must be unique within the block.
Result<RuleSet> parseRules(std::string_view text, int first_line, const std::string& file,
                           int first_column = 1);

}  // namespace halo::core
