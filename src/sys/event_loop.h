#pragma once
// EventLoop: a single-threaded epoll loop with file watches, timers, signals and a thread-safe
// post(). The daemons run everything that decides on one loop so no decision code needs a lock.
//
// Thread-safety: only post() may be called from other threads.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"

namespace halo::sys {

class EventLoop {
 public:
  using Callback = std::function<void()>;
  using Id = uint64_t;

  static Result<std::unique_ptr<EventLoop>> create(TimeSource& time);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Calls `cb` whenever `fd` is readable (or hung up) until unwatch(). The loop does not own fd.
  Result<Id> watchReadable(int fd, Callback cb);
  void unwatch(Id id);
  // One-shot timer.
  Id addTimer(Millis delay, Callback cb);
  void cancelTimer(Id id);
  // Blocks `signals` for the process and delivers them on the loop through a signalfd.
  Status watchSignals(const std::vector<int>& signals, std::function<void(int)> cb);
  // Runs `cb` on the loop thread soon; safe from any thread.
  void post(Callback cb);

  // Runs until exit() is called (returns at once if it was called before run()).
  Status run();
  void exit() { exit_requested_ = true; }
  TimeSource& time() { return time_; }

 private:
  EventLoop(TimeSource& time, int epoll_fd, int event_fd);
  void runDueTimers();
  void drainPosted();

  struct Watch {
    int fd;
    Callback cb;
  };
  struct Timer {
    Id id;
    Callback cb;
  };

  TimeSource& time_;
  int epoll_fd_;
  int event_fd_;
  int signal_fd_ = -1;
  bool exit_requested_ = false;
  Id next_id_ = 1;
  std::map<Id, Watch> watches_;
  std::multimap<MonotonicTime, Timer> timers_;
  std::function<void(int)> signal_cb_;
  std::mutex posted_mutex_;
  std::vector<Callback> posted_;  // guarded by posted_mutex_
};

}  // namespace halo::sys
