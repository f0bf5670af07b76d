#include "sys/proc_scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "base/strings.h"
#include "sys/probe_util.h"
#include "sys/process.h"

namespace halo::sys {

namespace {

// The whole content of a small /proc file; nullopt if the process is gone (or hides it).
std::optional<std::string> readProcFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {  // ESRCH: the process exited between open and read
      close(fd);
      return std::nullopt;
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string joinCmdline(const std::string& raw) {
  std::string s = raw;
  // argv ends with a NUL; programs that rewrite their title may leave a run of them.
  while (!s.empty() && s.back() == '\0') {
    s.pop_back();
  }
  for (char& c : s) {
    if (c == '\0') {
      c = ' ';
    }
  }
  return s;
}

bool isPid(const char* name) {
  if (*name == '\0') {
    return false;
  }
  for (const char* p = name; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') {
      return false;
    }
  }
  return true;
}

std::string firstExecutable(const std::vector<std::string>& candidates) {
  for (const std::string& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) {
      return c;
    }
  }
  return candidates.front();  // spawn then reports why it cannot run it
}

}  // namespace

Result<std::vector<ProcessInfo>> scanProcesses(const std::string& proc_root) {
  DIR* dir = opendir(proc_root.c_str());
  if (dir == nullptr) {
    return errnoStatus("opendir " + proc_root, errno);
  }
  std::vector<ProcessInfo> out;
  while (const dirent* entry = readdir(dir)) {
    if (!isPid(entry->d_name)) {
      continue;
    }
    const std::string base = proc_root + "/" + entry->d_name;
    std::optional<std::string> comm = readProcFile(base + "/comm");
    std::optional<std::string> cmdline = readProcFile(base + "/cmdline");
    if (!comm || !cmdline) {
      continue;
    }
    if (!comm->empty() && comm->back() == '\n') {
      comm->pop_back();
    }
    out.push_back(
        {static_cast<pid_t>(std::atol(entry->d_name)), std::move(*comm), joinCmdline(*cmdline)});
  }
  closedir(dir);
  return out;
}

ProbeOutcome commandSucceeds(const std::vector<std::string>& argv, Millis timeout) {
  const std::string what = join(argv, " ");
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
    return {false, "not an absolute command: '" + what + "'"};
  }
  SpawnOptions opts;
  opts.path = argv[0];
  opts.argv = argv;
  opts.env = currentEnvironment();
  auto child = spawn(opts);
  if (!child.ok()) {
    return {false, what + ": " + child.status().message()};
  }
  probe::Deadline deadline(timeout);
  std::optional<ExitInfo> exit;
  while (!(exit = reapChild(child->pid))) {
    pollfd p{child->pidfd, POLLIN, 0};
    if (poll(&p, 1, deadline.remainingMs()) == 0 && deadline.expired()) {
      killProcessGroup(child->pid, SIGKILL);
      int status;
      waitpid(child->pid, &status, 0);
      close(child->pidfd);
      return {false,
              what + ": no answer within " + std::to_string(timeout.count()) + " ms (killed)"};
    }
  }
  close(child->pidfd);
  return {exit->success(), what + ": " + exit->describe()};
}

ProbeOutcome serviceActive(const std::string& name, Millis timeout) {
  // The name becomes an argument or a path component: refuse what could be either an option
  // or a path out of /etc/init.d.
  if (name.empty() || name[0] == '-' || name.find('/') != std::string::npos) {
    return {false, "invalid service name '" + name + "'"};
  }
  if (access("/run/systemd/system", F_OK) == 0) {
    const std::string systemctl = firstExecutable({"/usr/bin/systemctl", "/bin/systemctl"});
    return commandSucceeds({systemctl, "is-active", "--quiet", name}, timeout);
  }
  return commandSucceeds({"/etc/init.d/" + name, "status"}, timeout);
}

}  // namespace halo::sys
