#pragma once
// FailoverMachine (reference 3.2.12): evaluates the module's rules once per period and decides
// which action to take. Pure: the runtime passes the resources and the time, executes the
// decision (with identity "failover rule <label>", so maxloop applies) and logs it.
//
// - Debounce: a rule acts only after its condition held in every evaluation for handle_time
//   (first seen true at t0, acts when now - t0 >= handle_time; 0 acts at once).
// - Edge: once acted, a rule acts again only after its condition went false and true again.
// - Priority: of the rules ready to act, the first in order wins (built-ins, then user rules);
//   assignments (rfs.uptodate=up) are all returned, and when any is, no other action is returned
//   in that evaluation: the assignment may change what the others see, so they wait a period.
// - Implicit wakeup: a module in WAIT because of a wait rule is woken when no wait rule's
//   condition holds any more (no debounce: the wait itself was debounced).

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "config/module_config.h"
#include "core/rule_eval.h"
#include "core/rules.h"

namespace halo::core {

struct ModuleSituation {
  // The module is WAIT because a rule's wait action put it there (not WAIT (Transient) at start).
  bool waiting_by_rule = false;
  // usersetting.checker / usersetting.failover allow automatic actions. When false the machine
  // returns nothing and forgets what it saw, so re-enabling waits handle_time again.
  bool actions_enabled = true;
};

struct FiredRule {
  std::string label;  // the rule's label, or kImplicitWakeupLabel
  ActionKind kind = ActionKind::Wait;
  std::optional<Assignment> assignment;  // ActionKind::Assign only
};

struct Decision {
  std::vector<FiredRule> assignments;  // apply all, before `action`
  std::optional<FiredRule> action;     // stop, stopstart, wait, restart or swap
  bool wakeup = false;                 // run the wakeup action from rule Implicit_wakeup
  bool empty() const { return assignments.empty() && !action && !wakeup; }
};

class FailoverMachine {
 public:
  // `period` is how often the runtime calls evaluate(); the machine measures time only by `now`.
  FailoverMachine(RuleSet rules, Millis period, Millis handle_time);

  Decision evaluate(const ResourceView& view, MonotonicTime now, const ModuleSituation& situation);

  // True while a resource read by a rule with a wait action is `init`: the module then stays
  // WAIT (Transient) until every such checker has reported (reference 3.2.11).
  bool waitInit(const ResourceView& view) const;

  // Forget every condition seen (the module stopped or was reconfigured).
  void reset();

  const std::vector<Rule>& rules() const { return rules_; }
  Millis period() const { return period_; }
  Millis handleTime() const { return handle_time_; }

 private:
  struct Track {
    bool held = false;    // the condition held at the last evaluation
    MonotonicTime since;  // when it started to hold
    bool fired = false;   // the rule acted since it started to hold
  };

  std::vector<Rule> rules_;
  std::vector<Track> tracks_;  // parallel to rules_
  Millis period_;
  Millis handle_time_;
};

// The machine of a module: moduleRules(config) with <failover> period and handle_time
// (defaults 5000 ms and 15000 ms without <failover>).
Result<FailoverMachine> makeFailoverMachine(const config::ModuleConfig& config);

}  // namespace halo::core
