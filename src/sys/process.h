#pragma once
// Child processes: spawned in their own process group (so a script and everything it forks can be
// killed together), watched through a pidfd (which also works for processes we did not fork).

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace halo::sys {

struct SpawnOptions {
  std::string path;               // executable
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "NAME=value", the whole environment
  std::string cwd;                // empty: inherit
  int output_fd = -1;             // stdout and stderr go here; -1: /dev/null
  int extra_fd = -1;              // passed to the child as fd 3 (a readiness pipe); -1: none
  bool new_session = false;       // setsid() instead of a new process group (daemons)
};

struct Child {
  pid_t pid = -1;
  int pidfd = -1;  // readable when the process exits; owned by the caller
};

Result<Child> spawn(const SpawnOptions& options);

// How a process ended, decoded from a wait status.
struct ExitInfo {
  int code = -1;   // exit code, or -1 when killed by a signal
  int signal = 0;  // terminating signal, or 0
  bool success() const { return signal == 0 && code == 0; }
  std::string describe() const;  // "exit code 1" / "killed by signal 9 (Killed)"
};

// Reaps a child that has exited; returns nullopt if it is still running.
std::optional<ExitInfo> reapChild(pid_t pid);
// Opens a pidfd for any process; NotFound if it no longer exists.
Result<int> openPidfd(pid_t pid);
// Kills the process group led by `pid` (scripts and what they forked).
void killProcessGroup(pid_t pid, int sig);
bool processExists(pid_t pid);
// argv[0..] of a running process from /proc, empty if it is gone.
std::vector<std::string> processCmdline(pid_t pid);
// The current environment as "NAME=value" strings.
std::vector<std::string> currentEnvironment();
// Replaces or adds NAME in an environment list.
void setEnv(std::vector<std::string>& env, const std::string& name, const std::string& value);
// Directory of the running executable (from /proc/self/exe).
std::string selfExeDir();
// A child spawned with SpawnOptions::extra_fd reports its readiness there: writes `line` and a
// newline to fd 3 and closes it; nothing when fd 3 is not open.
void reportReadiness(const std::string& line);

}  // namespace halo::sys
