#include "module/rfs_controller.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "module/tools.h"
#include "proto/api.h"
#include "sys/files.h"
#include "sys/process.h"
#include "sys/unix_socket.h"

namespace halo::module {

namespace {

// A stop that does not finish in this time ends with SIGKILL.
constexpr Millis kStopTimeout{30000};
constexpr int64_t kPollWaitMs = 1000;
constexpr Millis kPollTimeout{5000};

bool isOurs(pid_t pid, const std::string& module) {
  const auto cmd = sys::processCmdline(pid);
  return cmd.size() >= 4 && cmd[0].find("halo-rfs") != std::string::npos && cmd[2] == "-m" &&
         cmd[3] == module;
}

// Whether `dir` is the mount point of a halo-rfs FUSE mount (in this mount namespace).
bool interceptedHere(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  bool ours = false;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, majmin, root, point;
    f >> id >> parent >> majmin >> root >> point;
    if (point != dir) {
      continue;
    }
    const auto dash = line.find(" - ");
    ours = dash != std::string::npos && line.compare(dash + 3, 13, "fuse.halo-rfs") == 0;
  }
  return ours;
}

}  // namespace

RfsController::RfsController(Paths paths, std::string module, std::vector<std::string> dirs,
                             sys::EventLoop& loop, Hooks hooks)
    : paths_(std::move(paths)),
      module_(std::move(module)),
      dirs_(std::move(dirs)),
      loop_(loop),
      hooks_(std::move(hooks)) {}

RfsController::~RfsController() {
  stopPolling();
  loop_.cancelTimer(kill_timer_);
  if (pid_watch_ != 0) {
    loop_.unwatch(pid_watch_);
  }
  if (ready_watch_ != 0) {
    loop_.unwatch(ready_watch_);
  }
  if (ready_fd_ >= 0) {
    close(ready_fd_);
  }
  if (pidfd_ >= 0) {
    close(pidfd_);
  }
}

std::string RfsController::adopt() {
  auto text = sys::readFile(paths_.rfsPidFile(module_));
  if (!text.ok()) {
    return "";
  }
  const pid_t pid = static_cast<pid_t>(std::atol(text->c_str()));
  if (pid <= 1 || !isOurs(pid, module_)) {
    return "";
  }
  auto fd = sys::openPidfd(pid);
  if (!fd.ok()) {
    return "";
  }
  role_ = sys::processCmdline(pid)[1];
  watch(pid, *fd, false);
  startPolling();
  return role_;
}

void RfsController::cleanupLeftovers() {
  auto text = sys::readFile(paths_.rfsPidFile(module_));
  if (text.ok()) {
    const pid_t pid = static_cast<pid_t>(std::atol(text->c_str()));
    if (pid > 1 && isOurs(pid, module_)) {
      kill(pid, SIGKILL);
      for (int i = 0; i < 200 && sys::processExists(pid); ++i) {
        usleep(10000);  // a SIGKILLed process is gone within milliseconds
      }
    }
    unlink(paths_.rfsPidFile(module_).c_str());
  }
  detachDeadMounts();
}

void RfsController::detachDeadMounts() {
  for (const auto& d : dirs_) {
    if (interceptedHere(d)) {
      ::umount2(d.c_str(), MNT_DETACH);
    }
  }
}

void RfsController::start(const std::string& role, const std::vector<std::string>& args,
                          Done done) {
  if (pid_ > 0 && role_ == role && !stopping_ && !pending_) {
    loop_.post([done] { done(true, "already running"); });
    return;
  }
  if (pid_ > 0) {
    stop([this, role, args, done](bool, const std::string&) { spawn(role, args, done); });
    return;
  }
  spawn(role, args, std::move(done));
}

void RfsController::spawn(const std::string& role, const std::vector<std::string>& args,
                          Done done) {
  const std::string exe = findTool("halo-rfs");
  if (exe.empty()) {
    loop_.post([done] { done(false, "halo-rfs is not installed next to the runtime"); });
    return;
  }
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) {
    const std::string e = std::strerror(errno);
    loop_.post([done, e] { done(false, "pipe: " + e); });
    return;
  }
  (void)sys::makeDirs(paths_.log);
  int out = open((paths_.log + "/" + module_ + ".rfs.log").c_str(),
                 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  sys::SpawnOptions o;
  o.path = exe;
  o.argv = {exe, role, "-m", module_};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.env = sys::currentEnvironment();
  sys::setEnv(o.env, "HALO_ROOT", paths_.root);
  o.output_fd = out;
  o.extra_fd = ready[1];
  o.new_session = true;  // it must outlive a runtime restart: the application's I/O goes through it
  auto child = sys::spawn(o);
  close(ready[1]);
  if (out >= 0) {
    close(out);
  }
  if (!child.ok()) {
    close(ready[0]);
    const std::string e = child.status().message();
    loop_.post([done, e] { done(false, e); });
    return;
  }
  role_ = role;
  status_ = nlohmann::json::object();
  watch(child->pid, child->pidfd, true);
  pending_ = std::move(done);
  ready_fd_ = ready[0];
  auto buffer = std::make_shared<std::string>();
  auto w = loop_.watchReadable(ready_fd_, [this, buffer] {
    char buf[512];
    ssize_t n = read(ready_fd_, buf, sizeof buf);
    if (n > 0) {
      buffer->append(buf, static_cast<size_t>(n));
      if (buffer->find('\n') == std::string::npos) {
        return;
      }
    }
    loop_.unwatch(ready_watch_);
    ready_watch_ = 0;
    close(ready_fd_);
    ready_fd_ = -1;
    const std::string line = buffer->substr(0, buffer->find('\n'));
    Done d = std::move(pending_);
    pending_ = nullptr;
    if (line == "OK") {
      startPolling();
      if (d) {
        d(true, "");
      }
    } else {
      // It failed and exits: its exit is no surprise.
      stopping_ = true;
      if (d) {
        d(false, line.rfind("ERR ", 0) == 0 ? line.substr(4) : "halo-rfs ended at start");
      }
    }
  });
  if (w.ok()) {
    ready_watch_ = *w;
  }
}

void RfsController::watch(pid_t pid, int pidfd, bool child) {
  pid_ = pid;
  pidfd_ = pidfd;
  child_ = child;
  stopping_ = false;
  auto w = loop_.watchReadable(pidfd_, [this] { onExit(); });
  if (w.ok()) {
    pid_watch_ = *w;
  }
}

void RfsController::stop(Done done) {
  if (pid_ <= 0) {
    loop_.post([done] { done(true, "not running"); });
    return;
  }
  if (pending_) {
    // A start is in progress: it ends now, unsuccessfully.
    Done d = std::move(pending_);
    pending_ = nullptr;
    d(false, "stopped while starting");
  }
  stopping_ = true;
  pending_ = std::move(done);
  kill(pid_, SIGTERM);
  loop_.cancelTimer(kill_timer_);
  kill_timer_ = loop_.addTimer(kStopTimeout, [this] {
    kill_timer_ = 0;
    if (pid_ > 0) {
      kill(pid_, SIGKILL);  // onExit follows
    }
  });
}

void RfsController::onExit() {
  std::string how = "ended";
  if (child_) {
    if (auto info = sys::reapChild(pid_)) {
      how = info->describe();
    }
  }
  loop_.unwatch(pid_watch_);
  pid_watch_ = 0;
  close(pidfd_);
  pidfd_ = -1;
  pid_ = -1;
  loop_.cancelTimer(kill_timer_);
  kill_timer_ = 0;
  stopPolling();
  // A dead primary leaves a dead mount (every access: "Transport endpoint is not connected"):
  // without it the directories are plain again.
  detachDeadMounts();
  const std::string role = role_;
  const bool expected = stopping_;
  stopping_ = false;
  role_.clear();
  Done d = std::move(pending_);
  pending_ = nullptr;
  if (ready_watch_ != 0) {
    loop_.unwatch(ready_watch_);
    ready_watch_ = 0;
    close(ready_fd_);
    ready_fd_ = -1;
  }
  if (d) {
    // 3: a secondary whose session had ended on its own.
    const bool clean = how == "exit code 0" || how == "exit code 3" || how == "ended";
    d(expected && clean, expected ? how : "halo-rfs " + how + " while starting");
  }
  if (!expected && hooks_.ended) {
    hooks_.ended(role, how);
  }
}

void RfsController::unfence() {
  proto::Request r;
  r.cmd = "unfence";
  (void)sys::requestLine(paths_.rfsSocket(module_), proto::encodeRequest(r), Millis(1000));
}

void RfsController::peerLost() {
  proto::Request r;
  r.cmd = "peer_lost";
  (void)sys::requestLine(paths_.rfsSocket(module_), proto::encodeRequest(r), Millis(1000));
}

void RfsController::startPolling() {
  stopPolling();
  poll_stop_ = std::make_shared<std::atomic<bool>>(false);
  poller_ = std::thread([this, stop = poll_stop_] {
    uint64_t after = 0;
    const std::string socket = paths_.rfsSocket(module_);
    while (!*stop) {
      proto::Request r;
      r.cmd = "events";
      r.params = {{"after", after}, {"wait_ms", kPollWaitMs}};
      auto line = sys::requestLine(socket, proto::encodeRequest(r), kPollTimeout);
      auto reply = line.ok() ? proto::decodeReply(*line) : Result<proto::Reply>(line.status());
      if (!reply.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      after = reply->data.value("last", after);
      auto data = std::make_shared<nlohmann::json>(std::move(reply->data));
      loop_.post([this, stop, data] {
        if (*stop) {
          return;
        }
        if (data->contains("status")) {
          status_ = (*data)["status"];
          if (hooks_.status) {
            hooks_.status(status_);
          }
        }
        for (const auto& e : (*data)["events"]) {
          if (hooks_.event) {
            hooks_.event(e);
          }
        }
      });
    }
  });
}

void RfsController::stopPolling() {
  if (poll_stop_) {
    *poll_stop_ = true;
  }
  if (poller_.joinable()) {
    poller_.join();
  }
}

}  // namespace halo::module
