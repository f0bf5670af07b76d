// halod: the Halo node daemon.
//   halod [--foreground]
// Without --foreground it detaches and returns once its socket accepts requests.

#include <fcntl.h>
#include <signal.h>
#include <syslog.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "daemon/daemon.h"

namespace {

int run(int ready_fd) {
  halo::Paths paths = halo::Paths::fromEnvironment();
  halo::RealTimeSource time;
  auto loop = halo::sys::EventLoop::create(time);
  halo::Status st = loop.ok() ? halo::okStatus() : loop.status();
  std::unique_ptr<halo::daemon::Daemon> daemon;
  if (st.ok()) {
    auto d = halo::daemon::Daemon::create(paths, **loop);
    st = d.ok() ? halo::okStatus() : d.status();
    if (st.ok()) {
      daemon = std::move(*d);
      st = (*loop)->watchSignals({SIGTERM, SIGINT}, [&](int) { (*loop)->exit(); });
    }
    if (st.ok()) {
      st = daemon->begin();
    }
  }
  if (!st.ok()) {
    const std::string msg = "halod: " + st.message() + "\n";
    fputs(msg.c_str(), stderr);
    syslog(LOG_ERR, "%s", msg.c_str());
    if (ready_fd >= 0) {
      [[maybe_unused]] ssize_t n = write(ready_fd, msg.data(), msg.size());
    }
    return 1;
  }
  syslog(LOG_INFO, "halod started (HALO_ROOT=%s)", paths.root.c_str());
  if (ready_fd >= 0) {
    [[maybe_unused]] ssize_t n = write(ready_fd, "OK\n", 3);
    close(ready_fd);
  }
  st = (*loop)->run();
  daemon.reset();
  unlink(paths.daemonPidFile().c_str());
  return st.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool foreground = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--foreground") == 0 || std::strcmp(argv[i], "-f") == 0) {
      foreground = true;
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      printf("usage: halod [--foreground]\n"
             "The Halo node daemon: local API on $HALO_ROOT/run/halo/halod.sock, supervision of\n"
             "module runtimes, boot start. HALO_ROOT (default /) roots every path.\n");
      return 0;
    } else {
      fprintf(stderr, "halod: unknown argument '%s' (usage: halod [--foreground])\n", argv[i]);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  openlog("halo", LOG_PID, LOG_DAEMON);
  if (foreground) {
    return run(-1);
  }
  // Detach; the parent returns when the daemon is ready (or prints why it is not).
  int pipefd[2];
  if (pipe(pipefd) < 0) {
    perror("halod: pipe");
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("halod: fork");
    return 1;
  }
  if (pid > 0) {
    close(pipefd[1]);
    std::string got;
    char buf[1024];
    for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) {
      got.append(buf, static_cast<size_t>(n));
    }
    if (got == "OK\n") {
      return 0;
    }
    // Anything else, including nothing (a crash before it was ready), is a failure.
    fputs(got.empty() ? "halod: exited before it was ready; see $HALO_ROOT/var/log/halo/halod.log\n"
                      : got.c_str(),
          stderr);
    return 1;
  }
  close(pipefd[0]);
  setsid();
  // A daemon keeps none of its caller's terminal or pipes: stdout and stderr go to halod.log.
  const halo::Paths paths = halo::Paths::fromEnvironment();
  std::error_code ignored;
  std::filesystem::create_directories(paths.log, ignored);
  int devnull = open("/dev/null", O_RDWR);
  int log = open((paths.log + "/halod.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
  dup2(devnull, 0);
  dup2(log >= 0 ? log : devnull, 1);
  dup2(log >= 0 ? log : devnull, 2);
  return run(pipefd[1]);
}
