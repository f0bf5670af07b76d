#include "core/builtin_rules.h"

#include <algorithm>
#include <string_view>

namespace halo::core {
namespace {

// Labels of built-ins that only some modules have: disabling them is never a typo.
constexpr std::string_view kStaticLabels[] = {"module_failure", "interface_failure",
                                              "ip_failure",     "splitbrain_failure",
                                              "tcp_failure",    "ping_failure"};

ResourceRef named(std::string cls, std::string id, Side side = Side::Local) {
  return ResourceRef{side, std::move(cls), IdKind::Name, std::move(id)};
}

ResourceRef wildcard(std::string cls, IdKind kind) {
  return ResourceRef{Side::Local, std::move(cls), kind, ""};
}

Rule rule(std::string label, ExprPtr condition, ActionKind kind, RuleOwner owner) {
  Rule r;
  r.label = std::move(label);
  r.condition = std::move(condition);
  r.action = RuleAction{kind, std::nullopt};
  r.owner = owner;
  return r;
}

// `class.? == down` rules of checker classes whose resources the failover machine watches.
Rule anyDown(std::string label, std::string cls, ActionKind kind) {
  ExprPtr cond =
      makeCompare(wildcard(std::move(cls), IdKind::Any), CompareOp::Eq, ResourceState::Down);
  return rule(std::move(label), std::move(cond), kind, RuleOwner::Checker);
}

std::optional<ActionKind> checkerAction(config::CheckAction action) {
  switch (action) {
    case config::CheckAction::Stop:
      return ActionKind::Stop;
    case config::CheckAction::Stopstart:
      return ActionKind::Stopstart;
    case config::CheckAction::Restart:
      return ActionKind::Restart;
    case config::CheckAction::Wait:
      return ActionKind::Wait;
    case config::CheckAction::Noaction:
      return std::nullopt;
  }
  return std::nullopt;
}

void addChecker(std::vector<Rule>* out, const std::string& prefix, const std::string& cls,
                const std::string& ident, config::CheckAction action) {
  if (std::optional<ActionKind> kind = checkerAction(action)) {
    ExprPtr cond = makeCompare(named(cls, ident), CompareOp::Eq, ResourceState::Down);
    out->push_back(rule(prefix + ident, std::move(cond), *kind, RuleOwner::Checker));
  }
}

void addReplicationRules(const config::ModuleConfig& config, std::vector<Rule>* out) {
  if (config.rfs->syncdelta.count() > 0) {
    // Reference 2.4: a node alone after a double outage may use data synced within syncdelta.
    ExprPtr cond =
        makeAnd(makeAnd(makeAnd(makeCompare(wildcard("heartbeat", IdKind::All), CompareOp::Eq,
                                            ResourceState::Down),
                                makeCluster(CompareOp::Eq, ResourceState::Down)),
                        makeCompare(named("rfs", "synced"), CompareOp::Eq, ResourceState::Up)),
                makeCompare(named("rfs", "uptodate"), CompareOp::Eq, ResourceState::Down));
    Rule r = rule("rfs_forceuptodate", std::move(cond), ActionKind::Assign, RuleOwner::Rfs);
    r.action.assignment = Assignment{named("rfs", "uptodate"), ResourceState::Up};
    out->push_back(std::move(r));
  }
  // No rfs_notuptodate_server rule: whether this node's data may run the application is the
  // mirror machine's decision (data generations, DESIGN 5.4), which logs the reference's
  // "Action wait from failover rule rfs_notuptodate_server" itself. A rule reading resources
  // would also hold a joining secondary before the primary's heartbeats told it anything.
  // The primary stopped replicating (reference 2.2, nfsbox failure): this node's copy goes stale.
  out->push_back(
      rule("degraded_server",
           makeCompare(named("rfs", "degraded", Side::Remote), CompareOp::Eq, ResourceState::Up),
           ActionKind::Wait, RuleOwner::Rfs));
}

bool vipChecksInterface(const config::ModuleConfig& config) {
  return config.vip && std::any_of(config.vip->interfaces.begin(), config.vip->interfaces.end(),
                                   [](const auto& i) { return i.check; });
}

bool vipChecksAddress(const config::ModuleConfig& config) {
  if (!config.vip) {
    return false;
  }
  for (const auto& i : config.vip->interfaces) {
    for (const auto& a : i.addrs) {
      if (a.check) {
        return true;
      }
    }
  }
  return false;
}

bool readsRemote(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::Or:
    case Expr::Kind::And:
      return readsRemote(*e.lhs) || readsRemote(*e.rhs);
    case Expr::Kind::Not:
      return readsRemote(*e.lhs);
    case Expr::Kind::Compare:
      return e.resource.side == Side::Remote;
    case Expr::Kind::Cluster:
      return false;
  }
  return false;
}

class Merger {
 public:
  Merger(const config::ModuleConfig& config, std::vector<Rule> builtins)
      : config_(config), rules_(std::move(builtins)) {}

  Status add(const RuleSet& block, bool extends) {
    for (const Rule& r : block.rules) {
      HALO_RETURN_IF_ERROR(addRule(r, extends));
    }
    for (const RuleDisable& d : block.disables) {
      HALO_RETURN_IF_ERROR(disable(d));
    }
    return okStatus();
  }

  std::vector<Rule> take() { return std::move(rules_); }

 private:
  Status error(int line, int column, const std::string& what) const {
    return invalidArgument(config_.file + ":" + std::to_string(line) + ":" +
                           std::to_string(column) + ": " + what);
  }

  std::vector<Rule>::iterator find(const std::string& label) {
    return std::find_if(rules_.begin(), rules_.end(),
                        [&](const Rule& r) { return r.label == label; });
  }

  Status addRule(const Rule& r, bool extends) {
    if (config_.service.mode != config::Mode::Mirror && readsRemote(*r.condition)) {
      return error(r.line, r.column,
                   "rule " + r.label + " reads a remote resource, but a " +
                       config::modeName(config_.service.mode) +
                       " module has no peer resources (expected local resources only)");
    }
    auto it = find(r.label);
    if (it == rules_.end()) {
      rules_.push_back(r);
      return okStatus();
    }
    if (it->owner == RuleOwner::User) {
      return error(r.line, r.column,
                   "duplicate rule label '" + r.label +
                       "' (expected a label not already used at line " + std::to_string(it->line) +
                       ")");
    }
    if (it->owner == RuleOwner::Rfs) {
      return error(r.line, r.column,
                   "rule label '" + r.label +
                       "' is a replication rule, which cannot be replaced (expected another "
                       "label)");
    }
    if (extends) {
      return error(r.line, r.column,
                   "rule label '" + r.label +
                       "' is already a built-in rule (expected another label; with "
                       "<failover extends=\"no\"> a user rule replaces the built-in rule of its "
                       "label)");
    }
    *it = r;
    return okStatus();
  }

  Status disable(const RuleDisable& d) {
    auto it = find(d.label);
    if (it == rules_.end()) {
      if (std::find(std::begin(kStaticLabels), std::end(kStaticLabels), d.label) !=
          std::end(kStaticLabels)) {
        return okStatus();
      }
      return error(
          d.line, d.column,
          "no rule '" + d.label + "' to disable (expected the label of a built-in or user rule)");
    }
    if (it->owner == RuleOwner::Rfs) {
      return error(d.line, d.column,
                   "rule '" + d.label +
                       "' is a replication rule, which cannot be disabled (expected another "
                       "label)");
    }
    rules_.erase(it);
    return okStatus();
  }

  const config::ModuleConfig& config_;
  std::vector<Rule> rules_;
};

}  // namespace

std::vector<Rule> builtinRules(const config::ModuleConfig& config) {
  std::vector<Rule> out;
  if (config.service.mode == config::Mode::Mirror && config.rfs) {
    addReplicationRules(config, &out);
  }
  const config::CheckConfig empty;
  const config::CheckConfig& check = config.check ? *config.check : empty;
  if (check.splitbrain) {
    ExprPtr cond = makeCompare(named("splitbrain", "uptodate"), CompareOp::Eq, ResourceState::Down);
    out.push_back(
        rule("splitbrain_failure", std::move(cond), ActionKind::Wait, RuleOwner::Checker));
  }
  if (!check.intf.empty() || vipChecksInterface(config)) {
    out.push_back(anyDown("interface_failure", "intf", ActionKind::Wait));
  }
  if (!check.module.empty()) {
    out.push_back(anyDown("module_failure", "module", ActionKind::Wait));
  }
  if (!check.ip.empty() || vipChecksAddress(config)) {
    out.push_back(anyDown("ip_failure", "ip", ActionKind::Stopstart));
  }
  for (const auto& c : check.tcp) {
    addChecker(&out, "t_", "tcp", c.ident, c.action);
  }
  for (const auto& c : check.ping) {
    addChecker(&out, "p_", "ping", c.ident, c.action);
  }
  for (const auto& c : check.custom) {
    addChecker(&out, "c_", "custom", c.ident, c.action);
  }
  return out;
}

Result<RuleSet> moduleRules(const config::ModuleConfig& config) {
  Merger merger(config, builtinRules(config));
  if (config.failover) {
    for (const auto& block : config.failover->blocks) {
      HALO_ASSIGN_OR_RETURN(RuleSet parsed, parseRules(block.text, block.line, config.file));
      HALO_RETURN_IF_ERROR(merger.add(parsed, config.failover->extends));
    }
  }
  return RuleSet{merger.take(), {}};
}

}  // namespace halo::core
