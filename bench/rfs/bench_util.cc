#include "bench_util.h"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

extern char** environ;

namespace halo::rfs::bench {

bool spawnAndWait(TimeSource& time, const std::vector<std::string>& args,
                  std::chrono::seconds timeout, int* status, rusage* usage, std::string* why,
                  const std::string& stdout_path) {
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!stdout_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  }
  pid_t pid = 0;
  const int e = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (e != 0) {
    *why = "spawn " + args[0] + ": " + std::strerror(e);
    return false;
  }
  const MonotonicTime deadline = time.monotonicTime() + timeout;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  bool exited = false;
  while (!exited) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - time.monotonicTime());
    if (left.count() <= 0) {
      break;
    }
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      exited = r > 0;
    } else {
      // No pidfd (Linux < 5.3): poll the child every 10 ms.
      siginfo_t info{};
      exited = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               info.si_pid == pid;
      if (!exited) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  if (pidfd >= 0) {
    ::close(pidfd);
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
  }
  while (::wait4(pid, status, 0, usage) < 0 && errno == EINTR) {
  }
  if (!exited) {
    *why = args[0] + " did not finish within " + std::to_string(timeout.count()) + " s (killed)";
    return false;
  }
  return true;
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) {
    return "exit status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status));
  }
  return "status " + std::to_string(status);
}

bool enterPrivateNamespaces(std::string& why) {
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) {
    why =
        std::string("unshare(CLONE_NEWNS|CLONE_NEWNET): ") + std::strerror(errno) + " (needs root)";
    return false;
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    why = std::string("make / private: ") + std::strerror(errno);
    return false;
  }
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  if (fd >= 0) {
    ::close(fd);
  }
  if (!ok) {
    why = "bringing lo up failed";
  }
  return ok;
}

}  // namespace halo::rfs::bench
