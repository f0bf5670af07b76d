#pragma once
// What errd polls (reference 3.2.10): a snapshot of the process table from /proc, and the state
// of a system service for <proc service="yes">.

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "sys/probes.h"

namespace halo::sys {

struct ProcessInfo {
  pid_t pid = 0;
  std::string comm;     // /proc/<pid>/comm: the command name, at most 15 characters
  std::string cmdline;  // argv joined with single spaces; empty for kernel threads
};

// Every process under proc_root (a parameter for tests). Processes that exit during the scan
// are left out; only an unreadable proc_root is an error.
Result<std::vector<ProcessInfo>> scanProcesses(const std::string& proc_root = "/proc");

// Up when the service runs: `systemctl is-active --quiet <name>` under systemd, else
// `/etc/init.d/<name> status`; exit code 0 means active. Bounded by timeout.
ProbeOutcome serviceActive(const std::string& name, Millis timeout = std::chrono::seconds(10));

// Runs argv (argv[0] an absolute path, no shell) and reports up iff it exits 0 within timeout;
// on timeout its process group is killed. The building block of serviceActive.
ProbeOutcome commandSucceeds(const std::vector<std::string>& argv, Millis timeout);

}  // namespace halo::sys
