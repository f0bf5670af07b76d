#include "module/runtime.h"

#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "module/script_env.h"
#include "sys/files.h"
#include "sys/process.h"

namespace halo::module {

namespace {
constexpr const char* kComponent = "runtime";
constexpr const char* kScripts = "userplug";

LogLevel levelOf(core::Severity s) {
  switch (s) {
    case core::Severity::Critical:
      return LogLevel::Critical;
    case core::Severity::Error:
      return LogLevel::Error;
    case core::Severity::User:
      return LogLevel::User;
    case core::Severity::State:
      return LogLevel::State;
    case core::Severity::Info:
      return LogLevel::Info;
  }
  return LogLevel::Info;
}
}  // namespace

Result<std::unique_ptr<Runtime>> Runtime::create(RuntimeOptions options, sys::EventLoop& loop) {
  const Paths& p = options.paths;
  const std::string& m = options.module;
  const std::string conf = p.activeConfDir(m) + "/userconfig.xml";
  if (!sys::pathExists(conf)) {
    return failedPrecondition("module '" + m + "' is not configured: run halo config -m " + m);
  }
  auto cfg = config::parseModuleConfigFile(conf, config::processEnvironment());
  if (!cfg.ok()) {
    return failedPrecondition("the active configuration of module '" + m + "' is invalid: " +
                              cfg.status().message() + "; fix it and run halo config -m " + m);
  }
  if (cfg->service.mode == config::Mode::Farm) {
    return failedPrecondition("module '" + m +
                              "' has mode=\"farm\", which this Halo build cannot run yet");
  }
  if (cfg->service.mode != config::Mode::Mirror && options.start_verb != "start") {
    return failedPrecondition(options.start_verb +
                              " applies to mirror modules only; use halo "
                              "start -m " +
                              m);
  }
  HALO_RETURN_IF_ERROR(sys::makeDirs(p.moduleVarDir(m)));
  HALO_ASSIGN_OR_RETURN(ModuleLog log, ModuleLog::open(p.moduleLogDb(m), m));
  HALO_ASSIGN_OR_RETURN(ResourceStore res, ResourceStore::open(p.moduleResourceDb(m)));
  std::unique_ptr<Engine> engine;
  std::optional<MirrorSetup> mirror;
  if (cfg->service.mode == config::Mode::Mirror) {
    HALO_ASSIGN_OR_RETURN(mirror, prepareMirror(p, m, *cfg));
    auto failover = res.get("usersetting.failover");
    const bool failover_on =
        !(failover.ok() && failover->has_value() && (*failover)->state == ResourceState::Down);
    engine = std::make_unique<MirrorEngine>(
        mirrorMachineConfig(*cfg, *mirror, failover_on && cfg->service.failover),
        mirror->generation);
  } else {
    engine = std::make_unique<LightEngine>();
  }
  return std::unique_ptr<Runtime>(new Runtime(std::move(options), loop, std::move(*cfg),
                                              std::move(log), std::move(res), std::move(engine),
                                              std::move(mirror)));
}

Runtime::Runtime(RuntimeOptions options, sys::EventLoop& loop, config::ModuleConfig config,
                 ModuleLog log, ResourceStore resources, std::unique_ptr<Engine> engine,
                 std::optional<MirrorSetup> mirror)
    : options_(std::move(options)),
      loop_(loop),
      config_(std::move(config)),
      log_(std::move(log)),
      resources_(std::move(resources)),
      engine_(std::move(engine)),
      mirror_(dynamic_cast<MirrorEngine*>(engine_.get())),
      mirror_setup_(std::move(mirror)),
      scripts_(loop, loop.time()) {}

Status Runtime::begin() {
  const Paths& p = options_.paths;
  const std::string& m = options_.module;
  HALO_RETURN_IF_ERROR(sys::makeDirs(p.run + "/modules", 0700));
  HALO_ASSIGN_OR_RETURN(server_, sys::LineServer::listen(loop_, p.moduleSocket(m),
                                                         [this](auto conn, const auto& line) {
                                                           onRequest(conn, line);
                                                         }));
  server_->setClosedHandler([this](sys::LineServer::ConnId conn) {
    std::erase_if(waiters_, [&](const Waiter& w) {
      if (w.conn == conn && w.timer != 0) {
        loop_.cancelTimer(w.timer);
      }
      return w.conn == conn;
    });
  });
  HALO_RETURN_IF_ERROR(sys::writeFileAtomic(p.modulePidFile(m), std::to_string(getpid()) + "\n"));
  HALO_RETURN_IF_ERROR(makeMonitor());
  if (mirror_) {
    MirrorIo::Hooks hooks;
    hooks.execute = [this](Actions a) { execute(std::move(a)); };
    hooks.log = [this](LogLevel level, const std::string& component, const std::string& msg) {
      log(level, component, msg);
    };
    HALO_ASSIGN_OR_RETURN(
        mirror_io_, MirrorIo::create(p, m, config_, std::move(*mirror_setup_), loop_, resources_,
                                     *mirror_, std::move(hooks)));
    mirror_setup_.reset();
    HALO_RETURN_IF_ERROR(mirror_io_->begin(options_.recover));
  }
  if (options_.recover) {
    HALO_ASSIGN_OR_RETURN(PersistedState s, loadPersistedState(p, m));
    last_error_ = s.last_error;
    loop_counter_->restore(s.loop);
    log(LogLevel::Info, kComponent,
        "Runtime restarted; persisted state " + s.state.describe() + ", operation " +
            core::operationName(s.operation));
    execute(engine_->recover(s.state, s.operation));
    return okStatus();
  }
  trimUserlogs();
  last_error_.clear();
  log(LogLevel::User, kComponent, "Action " + options_.start_verb + " called by " + caller_);
  auto actions = engine_->command(options_.start_verb, {});
  if (!actions.ok()) {
    return actions.status();
  }
  execute(std::move(*actions));
  return okStatus();
}

void Runtime::requestStop(const std::string& caller) {
  control(engine_->operation() == core::Operation::None && !engine_->runningScript() ? "stop"
                                                                                     : "forcestop",
          caller);
}

void Runtime::log(LogLevel level, const std::string& component, const std::string& message) {
  Status s = log_.append(loop_.time().systemTime(), level, component, message);
  if (!s.ok()) {
    // The log is the operator's view; if it fails, stderr (the journal under systemd) is left.
    fprintf(stderr, "halo-module %s: cannot write log: %s (%s)\n", options_.module.c_str(),
            s.message().c_str(), message.c_str());
  }
}

void Runtime::persist() {
  PersistedState s{engine_->state(), engine_->operation(), last_error_,
                   loop_counter_ ? loop_counter_->save() : core::LoopCounterState{}};
  Status st = savePersistedState(options_.paths, options_.module, s);
  if (!st.ok()) {
    log(LogLevel::Error, kComponent, "Cannot persist the module state: " + st.message());
  }
  (void)resources_.setValue("state.local", s.state.describe(), kComponent,
                            loop_.time().systemTime());
}

void Runtime::execute(Actions actions) {
  for (auto& action : actions) {
    if (mirror_io_ && mirror_io_->perform(action)) {
      continue;
    }
    if (auto* run = std::get_if<core::RunScript>(&action)) {
      runScript(*run);
    } else if (auto* set = std::get_if<core::SetState>(&action)) {
      log(LogLevel::State, kComponent,
          std::string("Local state ") + core::mainStateName(set->state.main) + " " +
              core::readinessName(set->state.readiness));
      if (set->state == core::ModuleState{core::MainState::Up, core::Readiness::Ready}) {
        last_error_.clear();
      }
      persist();
    } else if (auto* line = std::get_if<core::LogLine>(&action)) {
      log(levelOf(line->severity), kComponent, line->message);
    } else if (std::holds_alternative<core::KillScript>(action)) {
      scripts_.kill();
    } else if (auto* done = std::get_if<core::OperationDone>(&action)) {
      persist();
      if (done->stopped) {
        exit_code_ = 0;
        checkWaiters();
        loop_.exit();
        return;
      }
    }
  }
  persist();
  checkWaiters();
  updateMonitor();
  if (mirror_io_) {
    mirror_io_->stateChanged();
  }
}

void Runtime::updateMonitor() {
  if (!monitor_) {
    return;
  }
  std::optional<bool> by_rule;
  if (mirror_) {
    // A mirror also waits for reasons of its own (data not up to date, witness): only a rule's
    // wait is for the rules' implicit wakeup to end.
    by_rule = mirror_->machine().heldByRule();
  }
  monitor_->update(engine_->state(), engine_->operation(), by_rule);
}

Status Runtime::makeMonitor() {
  Monitor::Hooks hooks;
  hooks.request = [this](core::Operation op, const std::string& identity,
                         const std::vector<std::string>& extra) {
    automatic(core::operationName(op), identity, extra);
  };
  hooks.log = [this](LogLevel level, const std::string& component, const std::string& msg) {
    log(level, component, msg);
  };
  hooks.script_context = [this] { return scriptContext(); };
  auto counter =
      std::make_unique<core::LoopCounter>(config_.service.maxloop, config_.service.loop_interval);
  if (loop_counter_) {
    counter->restore(loop_counter_->save());
  }
  auto m = Monitor::create(options_.paths, options_.module, loop_, resources_, config_, *counter,
                           std::move(hooks));
  if (!m.ok()) {
    return m.status();
  }
  monitor_ = std::move(*m);  // the old Monitor, if any, goes before the counter it uses
  loop_counter_ = std::move(counter);
  updateMonitor();
  return okStatus();
}

void Runtime::automatic(const std::string& verb, const std::string& identity,
                        const std::vector<std::string>& extra_args) {
  // Only what will run is counted: a refused request (busy, wrong state) costs nothing.
  if (Status can = engine_->check(verb); !can.ok()) {
    if (identity == "start") {
      return;  // the start gate is asked again at every evaluation: not worth a line each time
    }
    log(LogLevel::Info, kComponent,
        "Action " + verb + " from " + identity + " not applied: " + can.message());
    return;
  }
  const core::MainState main = engine_->state().main;
  const bool serving = main == core::MainState::Up || main == core::MainState::Prim ||
                       main == core::MainState::Alone || main == core::MainState::Second;
  const bool counted = verb == "restart" || verb == "stopstart" || (verb == "wait" && serving);
  if (counted && !monitor_->countAutomatic()) {
    log(LogLevel::Error, kComponent,
        "maxloop reached: " + verb + " asked by " + identity +
            " is one automatic action too many; stopping the module");
    control("stop", "maxloop");
    return;
  }
  auto actions = engine_->command(verb, extra_args);
  if (!actions.ok()) {
    log(LogLevel::Info, kComponent,
        "Action " + verb + " from " + identity + " not applied: " + actions.status().message());
    return;
  }
  if (identity != "start") {
    const bool rule = identity != "errd" && identity != "maxloop";
    log(LogLevel::User, kComponent,
        "Action " + verb + (rule ? " from failover rule " : " called by ") + identity);
  }
  execute(std::move(*actions));
}

ScriptContext Runtime::scriptContext() const {
  ScriptEnvInput in{options_.paths, options_.module, options_.cli_dir, options_.prefix, {}};
  if (config_.user) {
    for (const auto& v : config_.user->vars) {
      in.vars.emplace_back(v.name, v.value);
    }
  }
  ScriptContext ctx;
  ctx.bin_dir = options_.paths.activeBinDir(options_.module);
  if (config_.user && config_.user->logging == config::UserLogging::Userlog) {
    ctx.userlog_dir = options_.paths.moduleVarDir(options_.module);
  }
  ctx.env = buildScriptEnv(in, sys::currentEnvironment());
  return ctx;
}

void Runtime::runScript(const core::RunScript& script) {
  auto done = [this, script](const core::ScriptOutcome& outcome) {
    if (outcome.present && !outcome.success && script.kind == core::ScriptKind::Start) {
      last_error_ = "script " + script.name + " failed (" + outcome.detail + ")";
    }
    execute(engine_->scriptFinished(outcome));
  };
  if (!config_.user) {
    // Without <user>, a module runs no scripts (reference 3.2.8): report each as absent, in
    // order, without recursing.
    loop_.post([this, script, done] {
      if (engine_->runningScript() == script) {
        done(core::ScriptOutcome{false, true, "scripts disabled"});
      }
    });
    return;
  }
  std::optional<Millis> timeout;
  if (script.kind == core::ScriptKind::StopGraceful) {
    timeout = config_.user->nicestoptimeout;
  } else if (script.kind == core::ScriptKind::StopForce) {
    timeout = config_.user->forcestoptimeout;
  }
  std::string call = script.name;
  for (const auto& a : script.args) {
    call += " " + a;
  }
  scripts_.run(
      script, scriptContext(), timeout,
      [this, call](const std::string& userlog) {
        log(LogLevel::Info, kScripts, "Script " + call + (userlog.empty() ? "" : " > " + userlog));
      },
      done);
}

void Runtime::trimUserlogs() {
  if (!config_.user) {
    return;
  }
  const std::string dir = options_.paths.moduleVarDir(options_.module);
  std::vector<std::pair<std::string, off_t>> logs;  // names sort by date
  off_t total = 0;
  for (const auto& name : sys::listDir(dir)) {
    struct stat st;
    if (name.rfind("userlog_", 0) == 0 && stat((dir + "/" + name).c_str(), &st) == 0) {
      logs.emplace_back(name, st.st_size);
      total += st.st_size;
    }
  }
  const off_t limit = static_cast<off_t>(config_.user->userlogsize_kb) * 1024;
  for (size_t i = 0; i < logs.size() && total > limit; ++i) {
    unlink((dir + "/" + logs[i].first).c_str());
    total -= logs[i].second;
  }
}

void Runtime::onRequest(sys::LineServer::ConnId conn, const std::string& line) {
  auto req = proto::decodeRequest(line);
  if (!req.ok()) {
    server_->reply(conn, proto::encodeReply(
                             proto::errorReply("malformed request: " + req.status().message(), 2)));
    return;
  }
  bool deferred = false;
  proto::Reply reply = handle(conn, *req, deferred);
  if (!deferred) {
    server_->reply(conn, proto::encodeReply(reply));
  }
}

proto::Reply Runtime::stateReply() const {
  const auto s = engine_->state();
  nlohmann::json data = {{"module", options_.module},
                         {"mode", config::modeName(config_.service.mode)},
                         {"state", core::mainStateName(s.main)},
                         {"readiness", core::readinessName(s.readiness)},
                         {"operation", core::operationName(engine_->operation())},
                         {"pid", getpid()},
                         {"last_error", last_error_}};
  if (engine_->runningScript()) {
    data["script"] = engine_->runningScript()->name;
  }
  if (monitor_) {
    data.update(monitor_->describe());
  }
  if (mirror_io_) {
    data["mirror"] = mirror_io_->describe();
  }
  return proto::okReply(s.describe(), data);
}

proto::Reply Runtime::control(const std::string& verb, const std::string& caller) {
  auto actions = engine_->command(verb, {});
  if (actions.ok() && monitor_) {
    // Reference 5: without -i an operator acts and the maxloop counter starts over.
    if (caller == "admin") {
      monitor_->resetLoop();
    }
  }
  if (!actions.ok()) {
    return proto::errorReply("module " + options_.module + ": " + actions.status().message());
  }
  log(LogLevel::User, kComponent, "Action " + verb + " called by " + caller);
  execute(std::move(*actions));
  return proto::okReply(verb + " of module " + options_.module + " in progress");
}

proto::Reply Runtime::reload() {
  const std::string conf = options_.paths.activeConfDir(options_.module) + "/userconfig.xml";
  auto cfg = config::parseModuleConfigFile(conf, config::processEnvironment());
  if (!cfg.ok()) {
    return proto::errorReply("reload refused, the running configuration is unchanged: " +
                             cfg.status().message());
  }
  if (cfg->service.mode != config_.service.mode) {
    return proto::errorReply(
        "reload refused: the mode cannot change while the module runs; "
        "stop the module, then run halo config");
  }
  config_ = std::move(*cfg);
  // Checkers and errd are dynamic (reference 3.2): rebuild the monitor on the new config.
  Status m = makeMonitor();
  if (!m.ok()) {
    log(LogLevel::Error, kComponent, "Monitoring not reconfigured: " + m.message());
  }
  log(LogLevel::Info, kComponent, "Dynamic configuration applied");
  return proto::okReply("configuration reloaded");
}

proto::Reply Runtime::handle(sys::LineServer::ConnId conn, const proto::Request& req,
                             bool& deferred) {
  const std::string caller = req.identity.empty() ? "admin" : req.identity;
  if (req.cmd == "state" || req.cmd == "ping") {
    return stateReply();
  }
  if (req.cmd == "reload") {
    return reload();
  }
  if (req.cmd == "refresh") {
    monitor_->refresh();
    if (mirror_io_) {
      mirror_io_->refreshSettings();
    }
    return proto::okReply();
  }
  if (req.cmd == "incloop" || req.cmd == "resetloop" || req.cmd == "checkloop") {
    proto::Reply r = monitor_->loopCommand(req.cmd, caller);
    persist();
    return r;
  }
  if (req.cmd == "wait") {
    Waiter w{conn, req.params.value("kind", "state"), std::nullopt, 0};
    if (w.kind == "state") {
      w.target = core::parseMainState(req.params.value("state", ""));
      if (!w.target) {
        return proto::errorReply("unknown state '" + req.params.value("state", "") +
                                     "' (expected STOP, WAIT, ALONE, PRIM, SECOND or UP)",
                                 2);
      }
    }
    const int64_t timeout_ms = req.params.value("timeout_ms", int64_t{0});
    if (timeout_ms > 0) {
      w.timer = loop_.addTimer(Millis(timeout_ms), [this, conn] {
        std::erase_if(waiters_, [&](const Waiter& x) { return x.conn == conn; });
        proto::Reply r = stateReply();
        r.exit_code = 1;
        r.message = "timed out; module " + options_.module + " is " + r.message;
        server_->reply(conn, proto::encodeReply(r));
      });
    }
    waiters_.push_back(w);
    deferred = true;
    checkWaiters();
    return {};
  }
  static const std::set<std::string> kVerbs = {"start", "stop", "restart", "stopstart", "forcestop",
                                               "swap",  "prim", "second",  "primforce"};
  if (kVerbs.count(req.cmd) != 0) {
    if (!req.identity.empty() && (req.cmd == "restart" || req.cmd == "stopstart")) {
      automatic(req.cmd, req.identity);  // -i: counted against maxloop (reference 5)
      return proto::okReply(req.cmd + " asked by " + req.identity);
    }
    return control(req.cmd, caller);
  }
  return proto::errorReply("unknown command '" + req.cmd + "'", 2);
}

void Runtime::checkWaiters() {
  const auto s = engine_->state();
  const bool idle = engine_->operation() == core::Operation::None && !engine_->runningScript();
  std::vector<Waiter> keep;
  for (auto& w : waiters_) {
    bool satisfied = false;
    int code = 0;
    if (w.kind == "state") {
      satisfied = idle && s.stable() && s.main == *w.target;
    } else if (w.kind == "start") {
      satisfied = idle && s.stable();
      code = engine_->running() ? 0 : 1;
    } else if (w.kind == "stop") {
      satisfied = idle && s.main == core::MainState::Stop;
    } else {
      satisfied = true;
      code = 2;
    }
    if (!satisfied) {
      keep.push_back(w);
      continue;
    }
    if (w.timer != 0) {
      loop_.cancelTimer(w.timer);
    }
    proto::Reply r = stateReply();
    r.exit_code = code;
    if (code != 0 && !last_error_.empty()) {
      r.message += ": " + last_error_;
    }
    server_->reply(w.conn, proto::encodeReply(r));
  }
  waiters_ = std::move(keep);
}

}  // namespace halo::module
