#include "daemon/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "module/runtime_state.h"
#include "sys/files.h"
#include "sys/process.h"

namespace halo::daemon {

namespace {
constexpr Millis kHealthyAfter{60000};
}  // namespace

Millis restartDelay(int consecutive_failures) {
  if (consecutive_failures <= 1) {
    return Millis(100);
  }
  const int shift = std::min(consecutive_failures - 2, 6);
  return std::min(Millis(1000) * (1 << shift), Millis(60000));
}

Supervisor::Supervisor(Paths paths, sys::EventLoop& loop, std::string runtime_exe,
                       ModuleLogger logger)
    : paths_(std::move(paths)),
      loop_(loop),
      runtime_exe_(std::move(runtime_exe)),
      logger_(std::move(logger)) {}

Supervisor::~Supervisor() {
  for (auto& [name, e] : entries_) {
    loop_.unwatch(e.watch);
    if (e.pidfd >= 0) {
      close(e.pidfd);
    }
  }
}

std::vector<std::pair<std::string, pid_t>> Supervisor::runtimes() const {
  std::vector<std::pair<std::string, pid_t>> out;
  for (const auto& [name, e] : entries_) {
    out.emplace_back(name, e.pid);
  }
  return out;
}

void Supervisor::start(const std::string& module, const std::string& verb, Reply done) {
  auto it = entries_.find(module);
  if (it != entries_.end()) {
    done(proto::errorReply("module " + module +
                           " is already started; use halo restart or halo stopstart"));
    return;
  }
  spawn(module, /*recover=*/false, std::move(done), verb);
}

void Supervisor::spawn(const std::string& module, bool recover, Reply done,
                       const std::string& verb) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) {
    done(proto::errorReply(std::string("cannot start module runtime: pipe: ") +
                           std::strerror(errno)));
    return;
  }
  (void)sys::makeDirs(paths_.log);
  int out = open((paths_.log + "/" + module + ".runtime.log").c_str(),
                 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  sys::SpawnOptions opts;
  opts.path = runtime_exe_;
  opts.argv = {runtime_exe_, "--module", module};
  if (recover) {
    opts.argv.push_back("--recover");
  } else if (verb != "start") {
    opts.argv.push_back("--verb");
    opts.argv.push_back(verb);
  }
  opts.env = sys::currentEnvironment();
  sys::setEnv(opts.env, "HALO_ROOT", paths_.root);
  opts.output_fd = out;
  opts.extra_fd = ready[1];
  opts.new_session = true;  // runtimes must survive a halod restart and its signals
  auto child = sys::spawn(opts);
  close(ready[1]);
  if (out >= 0) {
    close(out);
  }
  if (!child.ok()) {
    close(ready[0]);
    done(proto::errorReply("cannot start module runtime " + runtime_exe_ + ": " +
                           child.status().message()));
    return;
  }
  auto w = loop_.watchReadable(child->pidfd, [this, module] { onExit(module); });
  if (!w.ok()) {
    sys::killProcessGroup(child->pid, SIGKILL);
    close(child->pidfd);
    close(ready[0]);
    done(proto::errorReply("cannot watch the module runtime: " + w.status().message()));
    return;
  }
  Entry& e = entries_[module];
  e.pid = child->pid;
  e.pidfd = child->pidfd;
  e.child = true;
  e.recovering = recover;
  e.watch = *w;
  e.started = loop_.time().monotonicTime();
  watchReadiness(module, ready[0], std::move(done));
}

void Supervisor::watchReadiness(const std::string& module, int fd, Reply done) {
  auto buffer = std::make_shared<std::string>();
  auto id = std::make_shared<sys::EventLoop::Id>(0);
  auto w = loop_.watchReadable(fd, [this, fd, buffer, id, done, module] {
    char buf[512];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      buffer->append(buf, static_cast<size_t>(n));
      if (buffer->find('\n') == std::string::npos) {
        return;
      }
    }
    loop_.unwatch(*id);
    close(fd);
    std::string line = buffer->substr(0, buffer->find('\n'));
    if (line == "OK") {
      done(proto::okReply("module " + module + " is starting (halo waitstart -m " + module +
                          " waits for the end of its start)"));
    } else if (line.rfind("ERR ", 0) == 0) {
      done(proto::errorReply(line.substr(4)));
    } else {
      done(proto::errorReply("the runtime of module " + module +
                             " ended before it was ready; see " + paths_.log + "/" + module +
                             ".runtime.log"));
    }
  });
  if (!w.ok()) {
    close(fd);
    done(proto::errorReply(w.status().message()));
    return;
  }
  *id = *w;
}

void Supervisor::onExit(const std::string& module) {
  auto it = entries_.find(module);
  if (it == entries_.end()) {
    return;
  }
  Entry& e = it->second;
  std::optional<sys::ExitInfo> info;
  if (e.child) {
    info = sys::reapChild(e.pid);
    if (!info) {
      return;  // not yet
    }
  }
  loop_.unwatch(e.watch);
  close(e.pidfd);
  e.pidfd = -1;
  e.watch = 0;
  auto persisted = module::loadPersistedState(paths_, module);
  const bool stopped = persisted.ok() && persisted->state.main == core::MainState::Stop &&
                       persisted->operation == core::Operation::None;
  if (info && info->code == 2 && !e.recovering) {
    entries_.erase(it);  // an operator's start was refused; the operator was told why
    return;
  }
  if ((info && info->success()) || (!info && stopped)) {
    entries_.erase(it);
    return;
  }
  const std::string how = info ? info->describe() : "exited (status unknown: adopted process)";
  if (loop_.time().monotonicTime() - e.started > kHealthyAfter) {
    e.failures = 0;
  }
  ++e.failures;
  scheduleRestart(module, how);
}

void Supervisor::scheduleRestart(const std::string& module, const std::string& why) {
  Entry& e = entries_[module];
  const Millis delay = restartDelay(e.failures);
  logger_(module, 'C',
          "Module runtime (pid " + std::to_string(e.pid) + ") died: " + why +
              "; restarting it in " + std::to_string(delay.count()) + " ms (restart " +
              std::to_string(e.failures) + ")");
  e.pid = -1;
  e.restart_timer = loop_.addTimer(delay, [this, module] {
    auto it = entries_.find(module);
    if (it == entries_.end()) {
      return;
    }
    const int failures = it->second.failures;
    entries_.erase(it);
    spawn(module, /*recover=*/true, [this, module, failures](const proto::Reply& r) {
      if (r.ok()) {
        logger_(module, 'I', "Module runtime restarted");
        return;
      }
      logger_(module, 'C', "Restart of the module runtime failed: " + r.message);
      // The module is still started: keep trying (with backoff) until it runs or is stopped.
      // If the runtime was spawned, its exit reaches onExit, which schedules the next try.
      if (!supervises(module)) {
        entries_[module].failures = failures + 1;
        scheduleRestart(module, r.message);
      }
    });
    auto again = entries_.find(module);
    if (again != entries_.end()) {
      again->second.failures = std::max(again->second.failures, failures);
    }
  });
}

void Supervisor::adoptExisting(const std::vector<std::string>& modules) {
  for (const auto& module : modules) {
    auto pidtext = sys::readFile(paths_.modulePidFile(module));
    pid_t pid = pidtext.ok() ? static_cast<pid_t>(std::atoi(pidtext->c_str())) : -1;
    const auto cmd = pid > 0 ? sys::processCmdline(pid) : std::vector<std::string>{};
    const bool ours = cmd.size() >= 3 && cmd[0].find("halo-module") != std::string::npos &&
                      cmd[2] == module;
    if (ours) {
      auto fd = sys::openPidfd(pid);
      if (fd.ok()) {
        Entry& e = entries_[module];
        e.pid = pid;
        e.pidfd = *fd;
        e.child = false;
        e.started = loop_.time().monotonicTime();
        auto w = loop_.watchReadable(e.pidfd, [this, module] { onExit(module); });
        e.watch = w.ok() ? *w : 0;
        logger_(module, 'I', "halod adopted the running module runtime (pid " +
                                 std::to_string(pid) + ")");
        continue;
      }
    }
    auto persisted = module::loadPersistedState(paths_, module);
    if (persisted.ok() && (persisted->state.main != core::MainState::Stop ||
                           persisted->operation != core::Operation::None)) {
      entries_[module].failures = 1;
      entries_[module].pid = pid;
      scheduleRestart(module, "not running when halod started");
    }
  }
}

}  // namespace halo::daemon
