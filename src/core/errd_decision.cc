#include "core/errd_decision.h"

#include <regex.h>

#include <algorithm>

namespace halo::core {

namespace {

// Linux keeps only this many characters of a command name in comm.
constexpr size_t kCommLength = 15;

// A compiled POSIX ERE, the dialect config validation accepts (regcomp, not std::regex, which
// differs and throws). An empty pattern (attribute not set) matches everything.
class Ere {
 public:
  explicit Ere(const std::string& pattern)
      : empty_(pattern.empty()),
        ok_(empty_ || regcomp(&re_, pattern.c_str(), REG_EXTENDED | REG_NOSUB) == 0) {}
  ~Ere() {
    if (ok_ && !empty_) {
      regfree(&re_);
    }
  }
  Ere(const Ere&) = delete;
  Ere& operator=(const Ere&) = delete;

  bool ok() const { return ok_; }
  bool search(const std::string& text) const {
    return empty_ || (ok_ && regexec(&re_, text.c_str(), 0, nullptr, 0) == 0);
  }

 private:
  regex_t re_{};
  bool empty_;
  bool ok_;
};

std::string subject(const config::ProcConfig& proc) {
  return (proc.service ? "Service " : "Process ") + proc.name;
}

}  // namespace

int countMatches(const config::ProcConfig& proc, const std::vector<ProcEntry>& processes) {
  if (proc.service) {
    return 0;
  }
  const bool by_regex = !proc.nameregex.empty();
  const Ere name_re(proc.nameregex);
  const Ere arg_re(proc.argregex);
  if (!name_re.ok() || !arg_re.ok()) {
    return 0;
  }
  const std::string comm_name = proc.name.substr(0, kCommLength);
  int count = 0;
  for (const ProcEntry& p : processes) {
    const bool name_ok = by_regex ? name_re.search(p.comm) : p.comm == comm_name;
    if (name_ok && arg_re.search(p.cmdline)) {
      ++count;
    }
  }
  return count;
}

ErrdVerdict judge(const config::ProcConfig& proc, int count, const ErrdProcState& prev) {
  ErrdVerdict v;
  v.next.polls = prev.polls + 1;
  v.next.last_count = count;
  const std::string who = subject(proc);
  const std::string n = std::to_string(count);
  const int ignored = std::max(0, proc.start_after - 1);
  if (v.next.polls <= ignored) {
    v.reason = who + " not monitored yet (poll " + std::to_string(v.next.polls) + " of " +
               std::to_string(ignored) + " ignored, start_after " +
               std::to_string(proc.start_after) + ")";
    return v;
  }
  ErrdFailure& failure = v.next.failure;
  if (proc.atleast >= 0 && count < proc.atleast) {
    failure = ErrdFailure::TooFew;
    const std::string cmp = " (" + n + " < atleast " + std::to_string(proc.atleast) + ")";
    if (count == 0) {
      v.reason = who + (proc.service ? " not active" : " not running") + cmp;
    } else {
      v.reason = who + " count " + n + " too low" + cmp;
    }
  } else if (proc.atmax > 0 && count >= proc.atmax) {
    failure = ErrdFailure::TooMany;
    v.reason = who + " count " + n + " reached atmax " + std::to_string(proc.atmax);
  } else if (proc.atmax == 0 && prev.last_count >= 0 && count > prev.last_count) {
    failure = ErrdFailure::Started;
    v.reason =
        who + " started (count " + std::to_string(prev.last_count) + " -> " + n + ", atmax 0)";
  } else {
    v.reason = who + (proc.service ? " active" : " running (count " + n + ")");
  }
  v.state = failure == ErrdFailure::None ? ResourceState::Up : ResourceState::Down;
  v.act =
      failure != ErrdFailure::None && (failure != prev.failure || failure == ErrdFailure::Started);
  return v;
}

bool classActive(const std::string& proc_class, const ModulePhases& phases,
                 const std::set<std::string>& enabled_custom_classes) {
  if (proc_class == "pre") {
    return phases.pre_active;
  }
  if (proc_class == "prim") {
    return phases.prim_active;
  }
  if (proc_class == "second") {
    return phases.second_active;
  }
  if (proc_class == "sec") {
    return phases.sec_active;
  }
  if (proc_class == "both") {
    return phases.both_active;
  }
  return phases.pre_active && enabled_custom_classes.count(proc_class) > 0;
}

}  // namespace halo::core
