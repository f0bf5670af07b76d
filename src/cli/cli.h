#pragma once
// Shared state and helpers of the `halo` command. Each verb family lives in its own file and
// returns the process exit code: 0 success, 1 failure (the message says what to do next),
// 2 usage error; `state -lq` returns the state codes of the reference.

#include <optional>
#include <string>
#include <vector>

#include "base/paths.h"
#include "base/status.h"
#include "base/time_source.h"
#include "config/module_config.h"
#include "core/module_state.h"
#include "proto/api.h"

namespace halo::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct Cli {
  Paths paths = Paths::fromEnvironment();
  mutable RealTimeSource time;  // reading a clock does not change the Cli
  std::string module;    // -m, else HALO_MODULE, else SAFEMODULE
  std::string identity;  // -i

  // Prints "halo: <message>" on stderr and returns `code`.
  int fail(const std::string& message, int code = kExitFailure) const;
  int fail(const Status& status) const { return fail(status.message()); }
  // Fails unless a module was named and is installed.
  Status requireModule() const;
  Status requireInstalled(const std::string& module) const;
  bool installed(const std::string& module) const;
  std::vector<std::string> installedModules() const;

  Result<proto::Reply> daemon(const proto::Request& req) const;
  // Unavailable when the module has no runtime (it is stopped).
  Result<proto::Reply> runtime(const std::string& module, const proto::Request& req,
                               std::optional<Millis> timeout = Millis(10000)) const;
  // The module's state: from its runtime, else from the persisted state (runtime absent).
  struct StateInfo {
    core::ModuleState state;
    bool runtime_alive = false;
    nlohmann::json details = nlohmann::json::object();
  };
  StateInfo moduleState(const std::string& module) const;
  // Started: a runtime answers, or the persisted state is not STOP (its runtime may be
  // restarting). What must not happen to a running module checks this.
  bool moduleStarted(const std::string& module) const;
  // halod supervises `module` or is about to start it (runtime restarting after a crash, boot
  // start waiting for boot_delay): a wait may go on.
  bool startPending(const std::string& module) const;
  // Parses the installed (not yet applied) configuration of a module.
  Result<config::ModuleConfig> installedConfig(const std::string& module) const;
  // Environment for scripts run by the CLI itself (config, confcheck, level...).
  std::vector<std::string> scriptEnv(const std::string& module, const std::string& bin_dir,
                                     const std::string& conf_dir) const;
  // Runs a module script synchronously, output to the terminal. nullopt: no such script.
  std::optional<int> runScript(const std::string& module, const std::string& bin_dir,
                               const std::string& conf_dir, const std::string& name,
                               const std::vector<std::string>& args) const;
  // Tells a running module to re-read its settings and resources now (no-op when stopped).
  void refreshRuntime(const std::string& module) const;
  // Appends to the module's log (component "cli").
  void moduleLog(const std::string& module, char level, const std::string& message) const;
};

// SHA-256 of a file as hex; "" if unreadable.
std::string fileSha256(const std::string& path);

}  // namespace halo::cli
