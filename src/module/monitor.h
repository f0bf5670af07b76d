#pragma once
// Monitor: what watches a started module and asks for actions (reference 3.2.10-3.2.12):
// checkers (on probe threads), process monitoring (errd), the failover rules evaluated every
// `period`, the maxloop counter, and the persistent settings usersetting.{checker,errd,
// failover}. It decides nothing itself about scripts: it asks the runtime for operations.
//
// Thread-safety: single-threaded, on the runtime's EventLoop (probes post their results there).

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/paths.h"
#include "config/module_config.h"
#include "core/errd_decision.h"
#include "core/failover_machine.h"
#include "core/light_machine.h"
#include "core/loop_counter.h"
#include "module/checker_runner.h"
#include "module/module_log.h"
#include "module/resource_store.h"
#include "module/script_runner.h"
#include "proto/api.h"
#include "sys/event_loop.h"

namespace halo::module {

class Monitor {
 public:
  struct Hooks {
    // Asks the runtime to run an automatic operation; identity is the rule, "errd", "maxloop".
    // `extra_args` go to the scripts of a restart (errd restart_services).
    std::function<void(core::Operation op, const std::string& identity,
                       const std::vector<std::string>& extra_args)>
        request;
    std::function<void(LogLevel, const std::string& component, const std::string& message)> log;
    // Environment and directories for custom checkers and errd handlers.
    std::function<ScriptContext()> script_context;
  };
  enum class Gate { Hold, Wait, Go };

  static Result<std::unique_ptr<Monitor>> create(const Paths& paths, const std::string& module,
                                                 sys::EventLoop& loop, ResourceStore& resources,
                                                 const config::ModuleConfig& config,
                                                 core::LoopCounter& loop_counter, Hooks hooks);
  ~Monitor();

  // The module's state or operation changed: (de)activates checkers and errd classes.
  // `waiting_by_rule`: whether a WAIT (NotReady) is a rule's (implicit wakeup applies); by
  // default every WAIT (NotReady) is, as for a light module.
  void update(core::ModuleState state, core::Operation op,
              std::optional<bool> waiting_by_rule = std::nullopt);
  // For a module held in WAIT: keep it (Hold: a wait resource is still init), make it WAIT
  // (NotReady: a wait rule holds), or wake it up.
  Gate gate();
  // Settings or resources changed outside (halo set, halo checker ...): re-read, evaluate now.
  void refresh();
  // Counts an automatic action (restart, stopstart, wait); false when it exceeds maxloop.
  bool countAutomatic();
  void resetLoop();
  proto::Reply loopCommand(const std::string& verb, const std::string& identity);
  // Checkers and monitored processes with their last result, for `halo state -v`.
  nlohmann::json describe() const;

 private:
  struct Checker {
    std::string resource;  // "tcp.web"
    config::CheckWhen when;
    std::string target;                    // what it probes, for display
    std::unique_ptr<PeriodicProbe> probe;  // null for custom checkers
    HealthCounter health;
    std::string detail;
    // custom checkers: a long-running program that sets its resource itself
    std::string exec;
    std::vector<std::string> args;
    pid_t pid = -1;
    int pidfd = -1;
    sys::EventLoop::Id watch = 0;
  };
  struct Proc {
    config::ProcConfig config;
    core::ErrdProcState state;
    std::string detail;
    ResourceState last = ResourceState::Init;
    // service="yes": asking systemd may block, so a probe thread asks; polls use its last answer.
    std::unique_ptr<PeriodicProbe> service_probe;
    std::optional<bool> service_up;
  };

  Monitor(Paths paths, std::string module, sys::EventLoop& loop, ResourceStore& resources,
          const config::ModuleConfig& config, core::LoopCounter& loop_counter, Hooks hooks,
          core::FailoverMachine machine);
  void addCheckers(const config::ModuleConfig& config);
  template <typename Add>
  void addVipCheckers(const config::ModuleConfig& config, Add& add);
  void onSample(Checker& c, const sys::ProbeOutcome& outcome);
  void setResource(const std::string& name, ResourceState state, const std::string& setter);
  bool setting(const std::string& name, bool default_on);
  void seedSettings(const config::ModuleConfig& config);
  void applyActivation();
  void startCustom(Checker& c);
  void stopCustom(Checker& c);
  void evaluate();
  void scheduleEvaluation();
  void pollErrd();
  void scheduleErrd(Millis delay);
  void runHandler(const Proc& p);
  // Reaps a killed child now, or later through a watch that outlives this Monitor.
  void reapLater(pid_t pid, int pidfd);
  std::unique_ptr<core::MapResourceView> view();
  static std::vector<std::string> splitArgs(const std::string& text);

  Paths paths_;
  std::string module_;
  sys::EventLoop& loop_;
  ResourceStore& resources_;
  Hooks hooks_;
  core::FailoverMachine machine_;
  core::LoopCounter& loop_counter_;
  // errd handlers still running: their watches are removed and they are reaped on destruction.
  struct Handler {
    pid_t pid;
    int pidfd;
    sys::EventLoop::Id watch;
  };
  std::vector<Handler> handlers_;
  sys::EventLoop::Id custom_restart_timer_ = 0;
  std::vector<std::unique_ptr<Checker>> checkers_;
  std::vector<Proc> procs_;
  Millis polltimer_{30000};
  core::ModuleState state_;
  core::Operation op_ = core::Operation::None;
  bool waiting_by_rule_ = false;
  sys::EventLoop::Id eval_timer_ = 0;
  sys::EventLoop::Id errd_timer_ = 0;
  bool errd_active_ = false;
};

}  // namespace halo::module
