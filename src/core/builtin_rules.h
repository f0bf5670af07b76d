#pragma once
// The rules a module gets from its configuration (reference 3.2.11, 3.2.12) and their merge with
// the user's <failover> blocks. The table of built-in rules is in docs/failover-rules.md.

#include <vector>

#include "base/status.h"
#include "config/module_config.h"
#include "core/rules.h"

namespace halo::core {

// In priority order (the first rule that fires wins): replication rules (mirror with <rfs>),
// splitbrain_failure, interface_failure, module_failure, ip_failure, then t_<ident>, p_<ident>
// and c_<ident> in configuration order. Checkers with action="noaction" get no rule.
std::vector<Rule> builtinRules(const config::ModuleConfig& config);

// The module's complete rule set: the built-ins, then each <failover> block in file order.
// A user label equal to a built-in's is an error with extends="yes"; with extends="no" the user
// rule replaces that built-in in place. Replication rules can be neither replaced nor disabled.
// Rules.disable(..) removes a rule; disabling a static built-in label that this module does not
// have (ip_failure without a VIP) is accepted, any other unknown label is an error.
// Remote resources are refused outside mirror modules. Errors carry config.file and positions.
Result<RuleSet> moduleRules(const config::ModuleConfig& config);

}  // namespace halo::core
