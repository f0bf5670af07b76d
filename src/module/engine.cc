#include "module/engine.h"

namespace halo::module {

namespace {

Actions widen(std::vector<core::Action> in) {
  Actions out;
  out.reserve(in.size());
  for (auto& a : in) {
    std::visit([&](auto& v) { out.emplace_back(std::move(v)); }, a);
  }
  return out;
}

std::optional<core::Operation> lightOperation(const std::string& verb) {
  auto op = core::parseOperation(verb);
  if (!op || *op == core::Operation::None) {
    return std::nullopt;
  }
  return op;
}

struct MirrorVerb {
  const char* verb;
  core::MirrorCommand command;
  core::Operation operation;  // how the runtime's waiters and monitor see it
};
constexpr MirrorVerb kMirrorVerbs[] = {
    {"start", core::MirrorCommand::Start, core::Operation::Start},
    {"stop", core::MirrorCommand::Stop, core::Operation::Stop},
    {"restart", core::MirrorCommand::Restart, core::Operation::Restart},
    {"stopstart", core::MirrorCommand::Stopstart, core::Operation::Stopstart},
    {"forcestop", core::MirrorCommand::Forcestop, core::Operation::Forcestop},
    {"swap", core::MirrorCommand::Swap, core::Operation::Stopstart},
    {"prim", core::MirrorCommand::Prim, core::Operation::Start},
    {"second", core::MirrorCommand::Second, core::Operation::Start},
    {"primforce", core::MirrorCommand::Primforce, core::Operation::Start},
    {"wait", core::MirrorCommand::Wait, core::Operation::Wait},
    {"wakeup", core::MirrorCommand::Wakeup, core::Operation::Wakeup},
};

const MirrorVerb* mirrorVerb(const std::string& verb) {
  for (const auto& v : kMirrorVerbs) {
    if (verb == v.verb) {
      return &v;
    }
  }
  return nullptr;
}

Status unknownVerb(const std::string& verb, const char* mode) {
  return invalidArgument("'" + verb + "' does not apply to a " + mode + " module");
}

}  // namespace

Status LightEngine::check(const std::string& verb) const {
  auto op = lightOperation(verb);
  return op ? machine_.check(*op) : unknownVerb(verb, "light");
}

Result<Actions> LightEngine::command(const std::string& verb,
                                     const std::vector<std::string>& extra_args) {
  auto op = lightOperation(verb);
  if (!op) {
    return unknownVerb(verb, "light");
  }
  HALO_ASSIGN_OR_RETURN(auto actions, machine_.command(*op, extra_args));
  return widen(std::move(actions));
}

Actions LightEngine::scriptFinished(const core::ScriptOutcome& outcome) {
  return widen(machine_.scriptFinished(outcome));
}

Actions LightEngine::recover(core::ModuleState persisted, core::Operation interrupted) {
  return widen(machine_.recover(persisted, interrupted));
}

bool LightEngine::running() const {
  return machine_.state() == core::ModuleState{core::MainState::Up, core::Readiness::Ready};
}

Status MirrorEngine::check(const std::string& verb) const {
  const MirrorVerb* v = mirrorVerb(verb);
  return v ? machine_.check(v->command) : unknownVerb(verb, "mirror");
}

Result<Actions> MirrorEngine::command(const std::string& verb,
                                      const std::vector<std::string>& /*extra_args*/) {
  const MirrorVerb* v = mirrorVerb(verb);
  if (!v) {
    return unknownVerb(verb, "mirror");
  }
  HALO_ASSIGN_OR_RETURN(Actions actions, machine_.command(v->command));
  op_ = v->operation;
  return track(std::move(actions));
}

Actions MirrorEngine::track(Actions actions) {
  for (const auto& a : actions) {
    if (std::holds_alternative<core::OperationDone>(a)) {
      op_ = core::Operation::None;
    }
  }
  return actions;
}

Actions MirrorEngine::scriptFinished(const core::ScriptOutcome& outcome) {
  return track(machine_.scriptFinished(outcome));
}

Actions MirrorEngine::recover(core::ModuleState persisted, core::Operation /*interrupted*/) {
  op_ = core::Operation::Start;  // ended by the OperationDone of a restart, if one is needed
  Actions actions = track(machine_.recover(persisted));
  if (!machine_.busy()) {
    op_ = core::Operation::None;
  }
  return actions;
}

bool MirrorEngine::running() const {
  const core::ModuleState s = machine_.state();
  return s.readiness == core::Readiness::Ready &&
         (s.main == core::MainState::Prim || s.main == core::MainState::Alone ||
          s.main == core::MainState::Second);
}

}  // namespace halo::module
