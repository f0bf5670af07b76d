#include "sys/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

extern char** environ;

namespace halo::sys {

std::string ExitInfo::describe() const {
  if (signal != 0) {
    return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  }
  return "exit code " + std::to_string(code);
}

Result<Child> spawn(const SpawnOptions& o) {
  // Everything the child needs is built before fork: only async-signal-safe calls after it.
  std::vector<char*> argv;
  for (const auto& a : o.argv) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : o.env) {
    envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) {
    return errnoStatus("open /dev/null", errno);
  }
  // A pipe that stays open until exec: reports exec failure (errno) to the parent.
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0) {
    int e = errno;
    close(devnull);
    return errnoStatus("pipe2", e);
  }
  const pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(devnull);
    close(errpipe[0]);
    close(errpipe[1]);
    return errnoStatus("fork", e);
  }
  if (pid == 0) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    for (int s = 1; s < NSIG; ++s) {
      signal(s, SIG_DFL);
    }
    if (o.new_session) {
      setsid();
    } else {
      setpgid(0, 0);
    }
    const int out = o.output_fd >= 0 ? o.output_fd : devnull;
    dup2(devnull, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (o.extra_fd >= 0) {
      dup2(o.extra_fd, 3);
    }
    const int first_closed = o.extra_fd >= 0 ? 4 : 3;
    for (int fd = first_closed; fd < 1024; ++fd) {
      if (fd != errpipe[1]) {
        close(fd);
      }
    }
    if (!o.cwd.empty() && chdir(o.cwd.c_str()) < 0) {
      int e = errno;
      [[maybe_unused]] ssize_t n = write(errpipe[1], &e, sizeof(e));
      _exit(127);
    }
    execve(o.path.c_str(), argv.data(), envp.data());
    int e = errno;
    [[maybe_unused]] ssize_t n = write(errpipe[1], &e, sizeof(e));
    _exit(127);
  }
  close(devnull);
  close(errpipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(errpipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(errpipe[0]);
  if (n == sizeof(child_errno)) {
    int status;
    waitpid(pid, &status, 0);
    return errnoStatus("exec " + o.path, child_errno);
  }
  Child c;
  c.pid = pid;
  auto fd = openPidfd(pid);
  if (!fd.ok()) {
    // Unwatchable means unsupervised: do not leave it running.
    killProcessGroup(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    return fd.status();
  }
  c.pidfd = *fd;
  return c;
}

std::optional<ExitInfo> reapChild(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) {
    return std::nullopt;
  }
  ExitInfo info;
  if (r < 0) {
    return info;  // not our child or already reaped: the exit status is unknown
  }
  if (WIFEXITED(status)) {
    info.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
  }
  return info;
}

Result<int> openPidfd(pid_t pid) {
  const long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    return errnoStatus("pidfd_open " + std::to_string(pid), errno == ESRCH ? ENOENT : errno);
  }
  fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  return static_cast<int>(fd);
}

void killProcessGroup(pid_t pid, int sig) {
  if (pid > 0) {
    kill(-pid, sig);
    kill(pid, sig);
  }
}

bool processExists(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

std::vector<std::string> processCmdline(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == '\0') {
      out.push_back(all.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

std::vector<std::string> currentEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    env.emplace_back(*e);
  }
  return env;
}

void setEnv(std::vector<std::string>& env, const std::string& name, const std::string& value) {
  const std::string prefix = name + "=";
  for (auto& e : env) {
    if (e.compare(0, prefix.size(), prefix) == 0) {
      e = prefix + value;
      return;
    }
  }
  env.push_back(prefix + value);
}

std::string selfExeDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) {
    return ".";
  }
  std::string p(buf, static_cast<size_t>(n));
  auto slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

void reportReadiness(const std::string& line) {
  if (fcntl(3, F_GETFD) < 0) {
    return;
  }
  std::string out = line + "\n";
  [[maybe_unused]] ssize_t n = write(3, out.data(), out.size());
  close(3);
}

}  // namespace halo::sys
