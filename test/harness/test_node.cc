#include "harness/test_node.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace halo::test {

namespace {
int g_counter = 0;  // names namespaces uniquely within one test binary
}  // namespace

std::string toolPath(const std::string& name) {
  return std::string(HALO_BINARY_DIR) + "/bin/" + name;
}

std::string sourcePath(const std::string& rel) { return std::string(HALO_SOURCE_DIR) + "/" + rel; }

bool processAlive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0; }

bool killPid(pid_t pid, int sig) { return pid > 1 && kill(pid, sig) == 0; }

CommandResult runCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env, std::chrono::seconds timeout) {
  CommandResult result;
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0) {
    return result;
  }
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    env.emplace_back(*e);
  }
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> cargv;
  for (auto& a : argv) {
    cargv.push_back(const_cast<char*>(a.c_str()));
  }
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  for (auto& e : env) {
    cenv.push_back(const_cast<char*>(e.c_str()));
  }
  cenv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    execvpe(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  close(out[1]);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  bool timed_out = false;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      timed_out = true;
      if (pid > 1) {
        kill(-pid, SIGKILL);
      }
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) {
      continue;
    }
    ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) {
      break;  // EOF: the command and everything holding its output are done
    }
    result.output.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!timed_out && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

std::unique_ptr<TestNode> TestNode::create(const std::string& name) {
  const std::string ns =
      "halo-t" + std::to_string(getpid()) + "-" + std::to_string(++g_counter) + "-" + name;
  char templ[] = "/tmp/halo-it.XXXXXX";
  if (mkdtemp(templ) == nullptr) {
    return nullptr;
  }
  auto node = std::unique_ptr<TestNode>(new TestNode(ns, templ));
  if (runCommand({"ip", "netns", "add", ns}, {}).exit_code != 0 ||
      runCommand({"ip", "-n", ns, "link", "set", "lo", "up"}, {}).exit_code != 0) {
    return nullptr;
  }
  return node;
}

bool eventually(const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) {
      return true;
    }
    usleep(100000);
  }
  return done();
}

void killNamespaceProcesses(const std::string& netns) {
  // Repeat a few times in case one was forking while we listed them.
  for (int round = 0; round < 5; ++round) {
    auto pids = runCommand({"ip", "netns", "pids", netns}, {});
    std::istringstream in(pids.output);
    bool any = false;
    for (pid_t pid; in >> pid;) {
      killPid(pid, SIGKILL);
      any = true;
    }
    if (!any) {
      break;
    }
    usleep(50000);
  }
}

std::unique_ptr<TestLan> TestLan::create(const std::string& name) {
  const std::string ns =
      "halo-t" + std::to_string(getpid()) + "-" + std::to_string(++g_counter) + "-" + name;
  auto lan = std::unique_ptr<TestLan>(new TestLan(ns));
  if (runCommand({"ip", "netns", "add", ns}, {}).exit_code != 0) {
    return nullptr;
  }
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"ip", "-n", ns, "link", "set", "lo", "up"},
           {"ip", "-n", ns, "link", "add", "br0", "type", "bridge"},
           {"ip", "-n", ns, "link", "set", "br0", "up"}}) {
    if (runCommand(args, {}).exit_code != 0) {
      return nullptr;
    }
  }
  return lan;
}

TestLan::~TestLan() {
  killNamespaceProcesses(netns_);
  runCommand({"ip", "netns", "del", netns_}, {});
}

bool TestLan::attach(const TestNode& node, const std::string& ifname, const std::string& cidr) {
  const std::string port = "p" + std::to_string(++ports_);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"ip", "-n", node.netns(), "link", "add", ifname, "type", "veth", "peer", "name", port,
            "netns", netns_},
           {"ip", "-n", netns_, "link", "set", port, "master", "br0", "up"},
           {"ip", "-n", node.netns(), "addr", "add", cidr, "dev", ifname},
           {"ip", "-n", node.netns(), "link", "set", ifname, "up"}}) {
    if (runCommand(args, {}).exit_code != 0) {
      return false;
    }
  }
  return true;
}

bool TestLan::plug(int port, bool in) {
  std::vector<std::string> args = {"ip", "-n", netns_, "link", "set", "p" + std::to_string(port)};
  if (in) {
    args.insert(args.end(), {"master", "br0"});
  } else {
    args.push_back("nomaster");
  }
  return runCommand(args, {}).exit_code == 0;
}

bool TestLan::addAddress(const std::string& cidr) {
  return runCommand({"ip", "-n", netns_, "addr", "add", cidr, "dev", "br0"}, {}).exit_code == 0;
}

CommandResult TestLan::exec(const std::vector<std::string>& argv,
                            std::chrono::seconds timeout) const {
  std::vector<std::string> full = {"ip", "netns", "exec", netns_};
  full.insert(full.end(), argv.begin(), argv.end());
  return runCommand(full, {}, timeout);
}

void TestNode::powerOff() {
  killNamespaceProcesses(netns_);
  // /run is a tmpfs on real servers: a power loss empties it, so the next halod start is a boot.
  std::error_code ec;
  std::filesystem::remove_all(root_ + "/run", ec);
  auto links = runCommand({"ip", "-n", netns_, "-o", "link", "show"}, {});
  std::istringstream in(links.output);
  for (std::string line; std::getline(in, line);) {
    // "2: eth0@if5: <...>": the name ends at '@' or ':'.
    const auto colon = line.find(": ");
    if (colon == std::string::npos) {
      continue;
    }
    std::string name = line.substr(colon + 2);
    name = name.substr(0, name.find_first_of("@:"));
    if (name != "lo") {
      setLink(name, false);
    }
  }
}

bool TestNode::setLink(const std::string& ifname, bool up) const {
  return runCommand({"ip", "-n", netns_, "link", "set", ifname, up ? "up" : "down"}, {})
             .exit_code == 0;
}

TestNode::~TestNode() {
  // Kill every process of the node by PID: halod, runtimes, scripts and applications all live
  // in the namespace.
  killNamespaceProcesses(netns_);
  runCommand({"ip", "netns", "del", netns_}, {});
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

CommandResult TestNode::exec(const std::vector<std::string>& argv,
                             std::chrono::seconds timeout) const {
  std::vector<std::string> full = {"ip", "netns", "exec", netns_};
  full.insert(full.end(), argv.begin(), argv.end());
  return runCommand(full, {"HALO_ROOT=" + root_}, timeout);
}

CommandResult TestNode::execMounted(const std::vector<std::string>& argv,
                                    std::chrono::seconds timeout) const {
  const pid_t daemon = daemonPid();
  if (daemon <= 1) {
    return CommandResult{-1, "halod is not running in " + netns_};
  }
  std::vector<std::string> full = {"nsenter", "--target", std::to_string(daemon), "--mount",
                                   "--net"};
  full.insert(full.end(), argv.begin(), argv.end());
  return runCommand(full, {"HALO_ROOT=" + root_}, timeout);
}

CommandResult TestNode::halo(const std::vector<std::string>& args,
                             std::chrono::seconds timeout) const {
  std::vector<std::string> argv = {toolPath("halo")};
  argv.insert(argv.end(), args.begin(), args.end());
  return exec(argv, timeout);
}

bool TestNode::startDaemon(std::string* why) {
  // halod without --foreground returns once its socket accepts requests.
  auto r = exec({toolPath("halod")});
  if (r.exit_code != 0) {
    *why = r.output;
    return false;
  }
  return true;
}

pid_t TestNode::readPid(const std::string& path) const {
  std::ifstream in(path);
  pid_t pid = -1;
  in >> pid;
  return in ? pid : -1;
}

pid_t TestNode::daemonPid() const { return readPid(root_ + "/run/halo/halod.pid"); }

void TestNode::killDaemon() {
  const pid_t pid = daemonPid();
  if (!killPid(pid, SIGKILL)) {
    return;
  }
  // Bounded wait for the kernel to finish the kill (a SIGKILLed process cannot linger long).
  for (int i = 0; i < 200 && processAlive(pid); ++i) {
    usleep(10000);
  }
}

std::string TestNode::package(const std::string& module_dir, const std::string& name) const {
  const std::string out = root_ + "/" + name + ".safe";
  runCommand({"sh", "-c", "cd '" + module_dir + "' && zip -qr '" + out + "' conf bin"}, {});
  return out;
}

std::string TestNode::httpGet(const std::string& url, std::string* error) const {
  auto r = exec({"curl", "-sS", "--max-time", "5", url});
  if (r.exit_code != 0) {
    if (error) {
      *error = r.output;
    }
    return "";
  }
  return r.output;
}

std::string TestNode::varDir(const std::string& module) const {
  return root_ + "/var/lib/halo/modules/" + module;
}

std::string TestNode::readFile(const std::string& path) const {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace halo::test
