#pragma once
// ScriptRunner executes module scripts (reference 4) one at a time on the EventLoop: each in its
// own process group, with the module's environment, output appended to a userlog file, bounded
// by a timeout when one is given. It reports the outcome; it decides nothing.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/time_source.h"
#include "core/light_machine.h"
#include "sys/event_loop.h"

namespace halo::module {

struct ScriptContext {
  std::string bin_dir;              // where scripts live (SAFEUSERBIN)
  std::string userlog_dir;          // SAFEUSERVAR; empty: output discarded (logging="none")
  std::vector<std::string> env;     // complete environment for the script
};

class ScriptRunner {
 public:
  using DoneCallback = std::function<void(const core::ScriptOutcome&)>;
  // Called when a script is started, with the userlog file name (empty when not logged).
  using StartedCallback = std::function<void(const std::string& userlog)>;

  ScriptRunner(sys::EventLoop& loop, TimeSource& time) : loop_(loop), time_(time) {}
  ~ScriptRunner();

  // Runs `script`. A missing script is reported as not present (scripts are optional). `done`
  // is always called later from the loop, never from inside run().
  void run(const core::RunScript& script, const ScriptContext& ctx, std::optional<Millis> timeout,
           StartedCallback started, DoneCallback done);
  // Kills the running script and everything it started in its group; `done` is not called.
  void kill();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  void onExit();
  void onTimeout();
  void finish(const core::ScriptOutcome& outcome);
  // Reports `outcome` from the loop later, unless the run was abandoned meanwhile.
  void postOutcome(DoneCallback done, core::ScriptOutcome outcome);

  sys::EventLoop& loop_;
  TimeSource& time_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  sys::EventLoop::Id watch_ = 0;
  sys::EventLoop::Id timer_ = 0;
  bool timed_out_ = false;
  // Bumped by every run() and kill(): a result posted for an abandoned run is dropped, so it
  // can never be taken for the outcome of the next script.
  uint64_t generation_ = 0;
  Millis timeout_{0};
  DoneCallback done_;
};

}  // namespace halo::module
