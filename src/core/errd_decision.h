#pragma once
// errd decisions (reference 3.2.10): which processes a <proc> counts, what a poll's count means for
// resource proc.<name> and whether to act, and when a <proc> class is monitored. Pure: the runtime
// scans /proc (or asks the service manager) and runs the actions.

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "config/user_config.h"
#include "core/resource_state.h"

namespace halo::core {

// One process of the table; mirrors sys::ProcessInfo so core does not depend on sys.
struct ProcEntry {
  pid_t pid = 0;
  std::string comm;     // command name, at most 15 characters (Linux truncates)
  std::string cmdline;  // argv joined with single spaces
};

// Processes matching `proc`: comm equal to the first 15 characters of name, or matching nameregex
// when set; and the command line matching argregex when set. Patterns are POSIX ERE searched
// anywhere (anchor them with ^...$), as validated at load; one that does not compile matches
// nothing. Always 0 for service="yes": the runtime passes 1 (active) or 0 to judge() instead.
int countMatches(const config::ProcConfig& proc, const std::vector<ProcEntry>& processes);

enum class ErrdFailure { None, TooFew, TooMany, Started };

// What judge() remembers between polls of one <proc>; reset to {} when its class becomes active.
struct ErrdProcState {
  int polls = 0;        // polls judged since activation
  int last_count = -1;  // count at the previous poll; -1: none yet
  ErrdFailure failure = ErrdFailure::None;
};

struct ErrdVerdict {
  ResourceState state = ResourceState::Init;  // for resource proc.<name>
  bool act = false;                           // run the proc's action now
  std::string reason;                         // for the log
  ErrdProcState next;                         // pass as `prev` at the next poll
};

// Judges one poll. Acts on entering a failing condition (count < atleast, count >= atmax N), not
// again while it lasts; atmax 0 acts on every poll whose count grew. The first start_after - 1
// polls only record the count (state stays init).
ErrdVerdict judge(const config::ProcConfig& proc, int count, const ErrdProcState& prev);

// Which script-delimited phases the module is in; each is true between its start_xx script and
// its stop_xx script (pre: from prestart to poststop).
struct ModulePhases {
  bool pre_active = false;
  bool prim_active = false;
  bool second_active = false;
  bool sec_active = false;  // start_sec..stop_sec: SECOND or ALONE
  bool both_active = false;
};

// Whether a <proc class> is monitored now. A custom class is monitored while enabled with
// `errd enable <class>` and the module runs (pre phase).
bool classActive(const std::string& proc_class, const ModulePhases& phases,
                 const std::set<std::string>& enabled_custom_classes);

}  // namespace halo::core
