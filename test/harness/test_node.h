#pragma once
// TestNode: one Halo node for integration tests, in its own network namespace (fresh loopback,
// nothing shared with the machine) under its own HALO_ROOT. Every process of the node (halod,
// module runtimes, scripts, applications) lives in the namespace, so cleanup kills exactly
// those PIDs (`ip netns pids`), then deletes the namespace and the root, even when a test fails.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace halo::test {

struct CommandResult {
  int exit_code = -1;  // -1: killed (timeout) or could not run
  std::string output;  // stdout and stderr interleaved
};

// Runs argv with the extra environment entries ("NAME=value"), bounded by `timeout`.
CommandResult runCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env,
                         std::chrono::seconds timeout = std::chrono::seconds(60));

class TestNode {
 public:
  // Creates the namespace "halo-t<pid>-<name>" and a temporary HALO_ROOT.
  static std::unique_ptr<TestNode> create(const std::string& name);
  ~TestNode();

  // Runs build/bin/halo with `args` inside the node.
  CommandResult halo(const std::vector<std::string>& args,
                     std::chrono::seconds timeout = std::chrono::seconds(60)) const;
  // Runs any command inside the node's namespace with its HALO_ROOT.
  CommandResult exec(const std::vector<std::string>& argv,
                     std::chrono::seconds timeout = std::chrono::seconds(60)) const;
  // Starts halod (returns once its socket answers); false with the reason in `why`.
  bool startDaemon(std::string* why);
  pid_t daemonPid() const;
  void killDaemon();
  // Pid recorded in a file under the node's root, -1 if absent.
  pid_t readPid(const std::string& path) const;
  // Builds NAME.safe from a module directory holding conf/ and bin/.
  std::string package(const std::string& module_dir, const std::string& name) const;
  // HTTP GET inside the namespace; returns the body, or "" with the failure in *error.
  std::string httpGet(const std::string& url, std::string* error = nullptr) const;

  const std::string& root() const { return root_; }
  const std::string& netns() const { return netns_; }
  std::string varDir(const std::string& module) const;
  std::string readFile(const std::string& path) const;

 private:
  TestNode(std::string netns, std::string root) : netns_(std::move(netns)), root_(std::move(root)) {}
  std::string netns_;
  std::string root_;
};

// Path of a built tool (halo, halod...).
std::string toolPath(const std::string& name);
// Path of a file in the source tree.
std::string sourcePath(const std::string& rel);
bool processAlive(pid_t pid);
// kill(2) that refuses pid <= 1: kill(-1, ...) would signal every process of the machine.
bool killPid(pid_t pid, int sig);

}  // namespace halo::test
