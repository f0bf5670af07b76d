#pragma once
// Engine: the module's lifecycle machine as the runtime drives it, whatever the mode. A light
// module wraps core::LightMachine, a mirror module core::MirrorMachine; both speak in verbs (the
// CLI's: start, stop, restart, stopstart, forcestop, wait, wakeup, and for a mirror swap, prim,
// second, primforce) and answer with the same actions (core::MirrorAction is the superset), so
// the runtime's socket, scripts, waiters and monitor are shared.
//
// Thread-safety: single-threaded, on the runtime's loop.

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "core/light_machine.h"
#include "core/mirror_machine.h"

namespace halo::module {

using Actions = std::vector<core::MirrorAction>;

class Engine {
 public:
  virtual ~Engine() = default;
  virtual core::ModuleState state() const = 0;
  // The operation in progress (None when idle): what the monitor and the waiters look at.
  virtual core::Operation operation() const = 0;
  virtual const std::optional<core::RunScript>& runningScript() const = 0;
  // Whether `verb` applies now; InvalidArgument for a verb this mode does not know.
  virtual Status check(const std::string& verb) const = 0;
  virtual Result<Actions> command(const std::string& verb,
                                  const std::vector<std::string>& extra_args) = 0;
  virtual Actions scriptFinished(const core::ScriptOutcome& outcome) = 0;
  virtual Actions recover(core::ModuleState persisted, core::Operation interrupted) = 0;
  // Whether a settled state is the one a start aims for (UP for light, a role for a mirror).
  virtual bool running() const = 0;
};

class LightEngine : public Engine {
 public:
  core::ModuleState state() const override { return machine_.state(); }
  core::Operation operation() const override { return machine_.operation(); }
  const std::optional<core::RunScript>& runningScript() const override {
    return machine_.runningScript();
  }
  Status check(const std::string& verb) const override;
  Result<Actions> command(const std::string& verb,
                          const std::vector<std::string>& extra_args) override;
  Actions scriptFinished(const core::ScriptOutcome& outcome) override;
  Actions recover(core::ModuleState persisted, core::Operation interrupted) override;
  bool running() const override;

 private:
  core::LightMachine machine_;
};

class MirrorEngine : public Engine {
 public:
  MirrorEngine(core::MirrorConfig config, core::DataGeneration persisted)
      : machine_(std::move(config), persisted) {}
  core::ModuleState state() const override { return machine_.state(); }
  core::Operation operation() const override { return op_; }
  const std::optional<core::RunScript>& runningScript() const override {
    return machine_.runningScript();
  }
  Status check(const std::string& verb) const override;
  Result<Actions> command(const std::string& verb,
                          const std::vector<std::string>& extra_args) override;
  Actions scriptFinished(const core::ScriptOutcome& outcome) override;
  Actions recover(core::ModuleState persisted, core::Operation interrupted) override;
  bool running() const override;

  // Events of the mirror's own inputs; every result goes through the same execute().
  core::MirrorMachine& machine() { return machine_; }
  const core::MirrorMachine& machine() const { return machine_; }
  // Keeps operation() in step with the actions (an OperationDone ends the operation).
  Actions track(Actions actions);

 private:
  core::MirrorMachine machine_;
  core::Operation op_ = core::Operation::None;
};

}  // namespace halo::module
