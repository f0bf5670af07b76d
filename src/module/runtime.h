#pragma once
// Runtime: the process that runs one started module (`halo-module`). It owns the module's
// lifecycle machine, executes its actions (scripts, state changes, log lines), persists the state
// at every change and serves the module's socket (state, control commands, waits).
//
// Thread-safety: single-threaded, on its EventLoop.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/paths.h"
#include "config/module_config.h"
#include "module/engine.h"
#include "module/mirror_io.h"
#include "module/module_log.h"
#include "module/monitor.h"
#include "module/resource_store.h"
#include "module/runtime_state.h"
#include "module/script_runner.h"
#include "proto/api.h"
#include "sys/event_loop.h"
#include "sys/unix_socket.h"

namespace halo::module {

struct RuntimeOptions {
  Paths paths;
  std::string module;
  bool recover = false;   // respawned by halod: resume the persisted state
  std::string start_verb = "start";  // or prim, second, primforce (mirror)
  std::string cli_dir;    // where `halo` lives (put on the scripts' PATH)
  std::string prefix;     // installation prefix
};

class Runtime {
 public:
  // Loads the active configuration and opens the module's stores. Errors here mean the module
  // cannot start (not configured, invalid configuration); they are returned, not logged.
  static Result<std::unique_ptr<Runtime>> create(RuntimeOptions options, sys::EventLoop& loop);

  // Binds the socket and begins: a start, or the recovery of the persisted state.
  Status begin();
  // Stops the module as `halo stop` would (SIGTERM).
  void requestStop(const std::string& caller);
  // 0 once the module reached STOP; the process then exits.
  int exitCode() const { return exit_code_; }

 private:
  Runtime(RuntimeOptions options, sys::EventLoop& loop, config::ModuleConfig config,
          ModuleLog log, ResourceStore resources, std::unique_ptr<Engine> engine,
          std::optional<MirrorSetup> mirror);

  void onRequest(sys::LineServer::ConnId conn, const std::string& line);
  proto::Reply handle(sys::LineServer::ConnId conn, const proto::Request& req, bool& deferred);
  proto::Reply stateReply() const;
  proto::Reply control(const std::string& verb, const std::string& caller);
  proto::Reply reload();
  void execute(Actions actions);
  void updateMonitor();
  // An operation asked by the monitor (rules, errd); counted against maxloop.
  void automatic(const std::string& verb, const std::string& identity,
                 const std::vector<std::string>& extra_args = {});
  Status makeMonitor();
  void runScript(const core::RunScript& script);
  void persist();
  void checkWaiters();
  void log(LogLevel level, const std::string& component, const std::string& message);
  ScriptContext scriptContext() const;
  void trimUserlogs();

  struct Waiter {
    sys::LineServer::ConnId conn;
    std::string kind;                       // "state", "start", "stop"
    std::optional<core::MainState> target;  // for "state"
    sys::EventLoop::Id timer = 0;
  };

  RuntimeOptions options_;
  sys::EventLoop& loop_;
  config::ModuleConfig config_;
  ModuleLog log_;
  ResourceStore resources_;
  std::unique_ptr<Engine> engine_;
  MirrorEngine* mirror_ = nullptr;  // engine_, when the module is a mirror
  std::optional<MirrorSetup> mirror_setup_;
  std::unique_ptr<MirrorIo> mirror_io_;
  ScriptRunner scripts_;
  std::unique_ptr<sys::LineServer> server_;
  std::unique_ptr<Monitor> monitor_;
  // Owned here, not by the Monitor, so a reload (which rebuilds the Monitor) keeps the count.
  std::unique_ptr<core::LoopCounter> loop_counter_;
  std::vector<Waiter> waiters_;
  std::string last_error_;
  std::string caller_ = "admin";
  int exit_code_ = 1;
};

}  // namespace halo::module
