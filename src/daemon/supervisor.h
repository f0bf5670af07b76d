#pragma once
// Supervisor: keeps one runtime process (`halo-module`) per started module. A runtime that dies
// without having stopped its module is logged as critical and respawned with --recover, after a
// growing delay (backoff) so a runtime that crashes at once does not spin.
//
// Runtimes outlive a halod restart: the new halod adopts them through their pid files (a pidfd
// works for processes it did not fork).
//
// Thread-safety: single-threaded, on the daemon's EventLoop.

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/paths.h"
#include "base/time_source.h"
#include "proto/api.h"
#include "sys/event_loop.h"

namespace halo::daemon {

// Restart delays: 100 ms, then doubling from 1 s up to 60 s; reset after 60 s of good health.
Millis restartDelay(int consecutive_failures);

class Supervisor {
 public:
  using Reply = std::function<void(const proto::Reply&)>;
  // Writes a line to the module's log (component "halod").
  using ModuleLogger = std::function<void(const std::string& module, char level,
                                          const std::string& message)>;

  Supervisor(Paths paths, sys::EventLoop& loop, std::string runtime_exe, ModuleLogger logger);
  ~Supervisor();

  // Starts a runtime for `module`; `done` gets the outcome once the runtime is ready or failed.
  // verb: "start", or "prim", "second", "primforce" for a mirror module.
  void start(const std::string& module, const std::string& verb, Reply done);
  // At daemon start: adopts live runtimes; respawns (--recover) those that died meanwhile.
  void adoptExisting(const std::vector<std::string>& modules);
  bool supervises(const std::string& module) const { return entries_.count(module) != 0; }
  std::vector<std::pair<std::string, pid_t>> runtimes() const;

 private:
  struct Entry {
    pid_t pid = -1;
    int pidfd = -1;
    bool child = false;  // forked by us (so we reap it) or adopted
    sys::EventLoop::Id watch = 0;
    sys::EventLoop::Id restart_timer = 0;
    MonotonicTime started;
    int failures = 0;
    bool recovering = false;  // spawned with --recover: a refusal is retried, not final
  };
  void spawn(const std::string& module, bool recover, Reply done,
             const std::string& verb = "start");
  void onExit(const std::string& module);
  void scheduleRestart(const std::string& module, const std::string& why);
  void watchReadiness(const std::string& module, int fd, Reply done);

  Paths paths_;
  sys::EventLoop& loop_;
  std::string runtime_exe_;
  ModuleLogger logger_;
  std::map<std::string, Entry> entries_;
};

}  // namespace halo::daemon
