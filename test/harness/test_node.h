#pragma once
// TestNode: one Halo node for integration tests, in its own network namespace (fresh loopback,
// nothing shared with the machine) under its own HALO_ROOT. Every process of the node (halod,
// module runtimes, scripts, applications) lives in the namespace, so cleanup kills exactly
// those PIDs (`ip netns pids`), then deletes the namespace and the root, even when a test fails.

#include <sys/types.h>

#include <chrono>
#include <functional>
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
  // Runs a command in the node's network namespace AND in halod's mount namespace, so it sees
  // the mounts the node's processes made (a replicated directory's FUSE mount): `ip netns exec`
  // gives each command a fresh mount namespace of its own. Needs halod running.
  CommandResult execMounted(const std::vector<std::string>& argv,
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
  // A power loss: every process of the node SIGKILLed (by PID), its links down so nothing more
  // leaves it, and its $RUN emptied (a tmpfs on real servers). The namespace and the rest of
  // the root stay for a later "power on" (links up, startDaemon).
  void powerOff();
  // Sets a link of the node up or down; false on failure.
  bool setLink(const std::string& ifname, bool up) const;
  std::string readFile(const std::string& path) const;

 private:
  TestNode(std::string netns, std::string root)
      : netns_(std::move(netns)), root_(std::move(root)) {}
  std::string netns_;
  std::string root_;
};

// TestLan: a switch for TestNodes — its own namespace holding a bridge; each attached node gets
// a veth whose other end is a port of the bridge. Nothing is created in the root namespace.
class TestLan {
 public:
  static std::unique_ptr<TestLan> create(const std::string& name);
  ~TestLan();
  // Joins `node` with interface `ifname` carrying `cidr` (from 198.18.0.0/15), link up.
  bool attach(const TestNode& node, const std::string& ifname, const std::string& cidr);
  // Plugs the `port`-th attached node (1-based, in attach order) into the bridge or out of it;
  // its link stays up (a partition, not a link loss).
  bool plug(int port, bool in);
  // An address on the bridge itself, so the switch namespace can act as a client or witness.
  bool addAddress(const std::string& cidr);
  CommandResult exec(const std::vector<std::string>& argv,
                     std::chrono::seconds timeout = std::chrono::seconds(60)) const;
  const std::string& netns() const { return netns_; }

 private:
  explicit TestLan(std::string netns) : netns_(std::move(netns)) {}
  std::string netns_;
  int ports_ = 0;
};

// Polls `done` every 100 ms for at most `limit`: for conditions only visible by looking (a log
// line, a resource); states are awaited with halo waitstate instead.
bool eventually(const std::function<bool()>& done,
                std::chrono::seconds limit = std::chrono::seconds(30));

// Kills (SIGKILL, by PID) every process of a network namespace, in a few bounded rounds.
void killNamespaceProcesses(const std::string& netns);

// Path of a built tool (halo, halod...).
std::string toolPath(const std::string& name);
// Path of a file in the source tree.
std::string sourcePath(const std::string& rel);
bool processAlive(pid_t pid);
// kill(2) that refuses pid <= 1: kill(-1, ...) would signal every process of the machine.
bool killPid(pid_t pid, int sig);

}  // namespace halo::test
