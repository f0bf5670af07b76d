#pragma once
// RfsController: the module runtime's handle on its replication process, halo-rfs (DESIGN 2, 6).
// It starts the process for a role (primary or secondary), stops it, watches it die, and relays
// what it reports: halo-rfs keeps its events until the runtime collects them (a long poll on its
// control socket, on a thread of ours), so a runtime that restarts loses nothing, and the process
// itself outlives the runtime (its own session), so the application's I/O never depends on it.
//
// Thread-safety: single-threaded, on the runtime's loop (the poller thread posts there).

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/paths.h"
#include "sys/event_loop.h"

namespace halo::module {

class RfsController {
 public:
  using Done = std::function<void(bool ok, const std::string& detail)>;
  struct Hooks {
    std::function<void(const nlohmann::json& event)> event;    // {"kind", "message", "level"}
    std::function<void(const nlohmann::json& status)> status;  // about once a second
    // The process ended without being asked to (crash, or a secondary whose link ended).
    std::function<void(const std::string& role, const std::string& how)> ended;
  };
  RfsController(Paths paths, std::string module, std::vector<std::string> dirs,
                sys::EventLoop& loop, Hooks hooks);
  ~RfsController();

  // A runtime restarted: a halo-rfs of this module still running is watched again. Returns its
  // role, "" when none runs.
  std::string adopt();
  // A fresh start: a halo-rfs left by a crashed run is killed, and dead FUSE mounts over the
  // replicated directories are detached, so they are plain directories again.
  void cleanupLeftovers();
  // Starts halo-rfs in `role` ("primary" or "secondary", with `args`), stopping another one
  // first; `done` once it reported its role in place (or failed).
  void start(const std::string& role, const std::vector<std::string>& args, Done done);
  // Stops it (SIGTERM, then SIGKILL after a bound); `done` once it is gone.
  void stop(Done done);
  void unfence();
  // The heartbeats declared the secondary lost: the primary ends its session at once instead
  // of waiting for the link's own timeouts (the application's syncs would wait that long).
  void peerLost();
  const std::string& role() const { return role_; }
  bool running() const { return pid_ > 0; }
  const nlohmann::json& lastStatus() const { return status_; }

 private:
  void spawn(const std::string& role, const std::vector<std::string>& args, Done done);
  void watch(pid_t pid, int pidfd, bool child);
  void onExit();
  void startPolling();
  void stopPolling();
  void poll();
  void detachDeadMounts();

  const Paths paths_;
  const std::string module_;
  const std::vector<std::string> dirs_;
  sys::EventLoop& loop_;
  Hooks hooks_;
  std::string role_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool child_ = false;  // ours to reap (adopted processes are not)
  sys::EventLoop::Id pid_watch_ = 0;
  sys::EventLoop::Id ready_watch_ = 0;
  sys::EventLoop::Id kill_timer_ = 0;
  int ready_fd_ = -1;
  Done pending_;  // start or stop in progress
  bool stopping_ = false;
  nlohmann::json status_ = nlohmann::json::object();
  std::shared_ptr<std::atomic<bool>> poll_stop_;
  std::thread poller_;
};

}  // namespace halo::module
