#include "core/failover_machine.h"

#include "core/builtin_rules.h"

namespace halo::core {

FailoverMachine::FailoverMachine(RuleSet rules, Millis period, Millis handle_time)
    : rules_(std::move(rules.rules)),
      tracks_(rules_.size()),
      period_(period),
      handle_time_(handle_time) {}

void FailoverMachine::reset() { tracks_.assign(rules_.size(), Track{}); }

Decision FailoverMachine::evaluate(const ResourceView& view, MonotonicTime now,
                                   const ModuleSituation& situation) {
  Decision d;
  if (!situation.actions_enabled) {
    reset();
    return d;
  }
  bool any_wait_holds = false;
  std::optional<size_t> winner;
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& rule = rules_[i];
    Track& track = tracks_[i];
    const bool holds = core::evaluate(*rule.condition, view);
    if (!holds) {
      track = Track{};
      continue;
    }
    if (!track.held) {
      track = Track{true, now, false};
    }
    const bool is_wait = rule.action.kind == ActionKind::Wait;
    any_wait_holds = any_wait_holds || is_wait;
    if (is_wait && situation.waiting_by_rule) {
      track.fired = true;  // already waiting: nothing to do, and no second wait after a wakeup
      continue;
    }
    if (track.fired || now - track.since < handle_time_) {
      continue;
    }
    if (rule.action.kind == ActionKind::Assign) {
      track.fired = true;
      d.assignments.push_back({rule.label, rule.action.kind, rule.action.assignment});
    } else if (!winner) {
      winner = i;
    }
  }
  // Losers stay ready: if their condition still holds after the winner's action, they act next.
  if (winner && d.assignments.empty()) {
    tracks_[*winner].fired = true;
    d.action = FiredRule{rules_[*winner].label, rules_[*winner].action.kind, std::nullopt};
  }
  d.wakeup = situation.waiting_by_rule && !any_wait_holds;
  return d;
}

bool FailoverMachine::waitInit(const ResourceView& view) const {
  for (const Rule& rule : rules_) {
    if (rule.action.kind == ActionKind::Wait && readsInitResource(*rule.condition, view)) {
      return true;
    }
  }
  return false;
}

Result<FailoverMachine> makeFailoverMachine(const config::ModuleConfig& config) {
  HALO_ASSIGN_OR_RETURN(RuleSet rules, moduleRules(config));
  const config::FailoverConfig defaults;
  const config::FailoverConfig& f = config.failover ? *config.failover : defaults;
  return FailoverMachine(std::move(rules), f.period, f.handle_time);
}

}  // namespace halo::core
