#include "module/script_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "sys/files.h"
#include "sys/process.h"

namespace halo::module {

ScriptRunner::~ScriptRunner() { kill(); }

void ScriptRunner::run(const core::RunScript& script, const ScriptContext& ctx,
                       std::optional<Millis> timeout, StartedCallback started,
                       DoneCallback done) {
  ++generation_;
  const std::string path = ctx.bin_dir + "/" + script.name;
  if (!sys::pathExists(path)) {
    postOutcome(std::move(done), core::ScriptOutcome{false, true, "not present"});
    return;
  }
  if (!sys::isExecutableFile(path)) {
    postOutcome(std::move(done),
                core::ScriptOutcome{true, false, path + " is not executable (chmod +x it)"});
    return;
  }
  int out_fd = -1;
  std::string userlog;
  if (!ctx.userlog_dir.empty()) {
    userlog = "userlog_" + formatFileTime(time_.systemTime()) + "_" + script.name + ".ulog";
    out_fd = open((ctx.userlog_dir + "/" + userlog).c_str(),
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (out_fd >= 0) {
      std::string header = "==== " + formatLogTime(time_.systemTime()) + " " + script.name;
      for (const auto& a : script.args) {
        header += " " + a;
      }
      header += "\n";
      [[maybe_unused]] ssize_t n = write(out_fd, header.data(), header.size());
    }
  }
  sys::SpawnOptions opts;
  opts.path = path;
  opts.argv.push_back(path);
  opts.argv.insert(opts.argv.end(), script.args.begin(), script.args.end());
  opts.env = ctx.env;
  opts.cwd = ctx.bin_dir;
  opts.output_fd = out_fd;
  auto child = sys::spawn(opts);
  if (out_fd >= 0) {
    close(out_fd);
  }
  if (!child.ok()) {
    postOutcome(std::move(done), core::ScriptOutcome{true, false, child.status().message()});
    return;
  }
  pid_ = child->pid;
  pidfd_ = child->pidfd;
  done_ = std::move(done);
  timed_out_ = false;
  auto w = loop_.watchReadable(pidfd_, [this] { onExit(); });
  if (!w.ok()) {
    // Without a watch the end would never be seen: abandon the script now.
    sys::killProcessGroup(pid_, SIGKILL);
    kill();
    postOutcome(std::move(done), core::ScriptOutcome{true, false, w.status().message()});
    return;
  }
  watch_ = *w;
  if (timeout) {
    timeout_ = *timeout;
    timer_ = loop_.addTimer(*timeout, [this] { onTimeout(); });
  }
  if (started) {
    started(userlog);
  }
}

void ScriptRunner::postOutcome(DoneCallback done, core::ScriptOutcome outcome) {
  loop_.post([this, gen = generation_, done = std::move(done), outcome = std::move(outcome)] {
    if (gen == generation_) {
      done(outcome);
    }
  });
}

void ScriptRunner::onTimeout() {
  timer_ = 0;
  timed_out_ = true;
  // The whole group: a stop script that hangs often hangs in something it started.
  sys::killProcessGroup(pid_, SIGKILL);
}

void ScriptRunner::onExit() {
  auto info = sys::reapChild(pid_);
  if (!info) {
    return;  // spurious wakeup
  }
  core::ScriptOutcome outcome;
  outcome.success = info->success() && !timed_out_;
  outcome.detail = timed_out_ ? "timed out after " + std::to_string(timeout_.count() / 1000) +
                                    " s, killed"
                              : info->describe();
  finish(outcome);
}

void ScriptRunner::finish(const core::ScriptOutcome& outcome) {
  loop_.unwatch(watch_);
  if (timer_ != 0) {
    loop_.cancelTimer(timer_);
    timer_ = 0;
  }
  close(pidfd_);
  pidfd_ = -1;
  pid_ = -1;
  DoneCallback done = std::move(done_);
  done_ = nullptr;
  if (done) {
    done(outcome);
  }
}

void ScriptRunner::kill() {
  ++generation_;  // also drops a result already posted for the abandoned run
  if (pid_ <= 0) {
    return;
  }
  sys::killProcessGroup(pid_, SIGKILL);
  // Reap now so no zombie is left; the outcome is dropped (the caller abandoned the script).
  for (int i = 0; i < 200 && !sys::reapChild(pid_); ++i) {
    usleep(5000);
  }
  done_ = nullptr;
  finish(core::ScriptOutcome{true, false, "killed"});
}

}  // namespace halo::module
