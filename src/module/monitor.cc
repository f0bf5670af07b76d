#include "module/monitor.h"

#include <signal.h>
#include <unistd.h>

#include "sys/netlink_addr.h"
#include "sys/proc_scan.h"
#include "sys/process.h"
#include "sys/unix_socket.h"

namespace halo::module {

namespace {
constexpr const char* kComponent = "monitor";
// <intf> has no interval attribute; a lost link should be seen quickly.
constexpr Millis kIntfInterval{5000};
// The checkers a mirror's <vip> implies: a lost link or VIP is a failover, so look often.
constexpr Millis kVipCheckInterval{1000};

// Up when the interface carrying the VIP's subnet (or `ifname`) has its link running.
sys::ProbeOutcome probeVipInterface(const std::string& vip, const std::string& ifname) {
  auto ip = sys::IpAddr::parse(vip);
  if (!ip.ok()) {
    return {false, ip.status().message()};
  }
  auto entry = sys::findInterfaceForVip(*ip, ifname);
  if (!entry.ok()) {
    return {false, entry.status().message()};
  }
  auto link = sys::linkState(entry->ifindex);
  if (!link.ok()) {
    return {false, link.status().message()};
  }
  if (!link->up || !link->running) {
    return {false, "link " + link->name + (link->up ? " has no carrier" : " is down")};
  }
  return {true, "link " + link->name + " running"};
}

std::optional<core::Operation> operationFor(core::ActionKind kind) {
  switch (kind) {
    case core::ActionKind::Stop:
      return core::Operation::Stop;
    case core::ActionKind::Stopstart:
      return core::Operation::Stopstart;
    case core::ActionKind::Restart:
      return core::Operation::Restart;
    case core::ActionKind::Wait:
      return core::Operation::Wait;
    case core::ActionKind::Swap:
    case core::ActionKind::Assign:
      return std::nullopt;
  }
  return std::nullopt;
}

// Whether a checker of this `when` runs in the module's current phase (reference 3.2.11):
// pre from prestart to poststop, both from start_both to stop_both (light: UP Ready).
bool whenActive(config::CheckWhen when, core::ModuleState s, core::Operation op) {
  const bool stopping = op == core::Operation::Stop || op == core::Operation::Forcestop;
  switch (when) {
    case config::CheckWhen::Pre:
      return s.main != core::MainState::Stop && !stopping;
    case config::CheckWhen::Both:
      if (s == core::ModuleState{core::MainState::Second, core::Readiness::Ready}) {
        return true;
      }
      [[fallthrough]];
    case config::CheckWhen::Prim:
      return s == core::ModuleState{core::MainState::Up, core::Readiness::Ready} ||
             s == core::ModuleState{core::MainState::Prim, core::Readiness::Ready} ||
             s == core::ModuleState{core::MainState::Alone, core::Readiness::Ready};
    case config::CheckWhen::Second:
      return s == core::ModuleState{core::MainState::Second, core::Readiness::Ready};
  }
  return false;
}

// Starts a program of the module (custom checker, errd handler): a path relative to the module's
// bin directory, run there with the scripts' environment.
Result<sys::Child> spawnModuleProgram(const ScriptContext& ctx, const std::string& program,
                                      const std::vector<std::string>& args) {
  sys::SpawnOptions o;
  o.path = !program.empty() && program[0] == '/' ? program : ctx.bin_dir + "/" + program;
  o.argv = {o.path};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.env = ctx.env;
  o.cwd = ctx.bin_dir;
  return sys::spawn(o);
}

sys::ProbeOutcome probeModule(const std::string& socket, const std::string& name) {
  auto r = sys::requestLine(socket, R"({"cmd":"state","params":{}})", Millis(5000));
  if (!r.ok()) {
    return {false, "module " + name + " is not running"};
  }
  auto reply = proto::decodeReply(*r);
  if (!reply.ok()) {
    return {false, "module " + name + ": unreadable state"};
  }
  const std::string st = reply->data.value("state", "");
  const bool up = reply->data.value("readiness", "") == "Ready" &&
                  (st == "UP" || st == "PRIM" || st == "ALONE");
  return {up, "module " + name + " is " + reply->message};
}
}  // namespace

Result<std::unique_ptr<Monitor>> Monitor::create(const Paths& paths, const std::string& module,
                                                 sys::EventLoop& loop, ResourceStore& resources,
                                                 const config::ModuleConfig& config,
                                                 core::LoopCounter& loop_counter, Hooks hooks) {
  auto machine = core::makeFailoverMachine(config);
  if (!machine.ok()) {
    return machine.status();
  }
  auto m = std::unique_ptr<Monitor>(new Monitor(
      paths, module, loop, resources, config, loop_counter, std::move(hooks), std::move(*machine)));
  return m;
}

Monitor::Monitor(Paths paths, std::string module, sys::EventLoop& loop, ResourceStore& resources,
                 const config::ModuleConfig& config, core::LoopCounter& loop_counter, Hooks hooks,
                 core::FailoverMachine machine)
    : paths_(std::move(paths)),
      module_(std::move(module)),
      loop_(loop),
      resources_(resources),
      hooks_(std::move(hooks)),
      machine_(std::move(machine)),
      loop_counter_(loop_counter) {
  seedSettings(config);
  addCheckers(config);
  if (config.errd) {
    polltimer_ = config.errd->polltimer;
    for (const auto& p : config.errd->procs) {
      procs_.push_back(Proc{p, {}, "", ResourceState::Init, nullptr, std::nullopt});
      setResource("proc." + p.name, ResourceState::Init, "errd");
    }
    for (size_t i = 0; i < procs_.size(); ++i) {  // procs_ no longer grows: indexes are stable
      if (procs_[i].config.service) {
        const std::string name = procs_[i].config.name;
        procs_[i].service_probe = std::make_unique<PeriodicProbe>(
            loop_, polltimer_, [name] { return sys::serviceActive(name); },
            [this, i](const sys::ProbeOutcome& o) { procs_[i].service_up = o.up; });
      }
    }
  }
}

Monitor::~Monitor() {
  loop_.cancelTimer(eval_timer_);
  loop_.cancelTimer(errd_timer_);
  loop_.cancelTimer(custom_restart_timer_);
  // Ask every probe thread to stop first, so their joins (each bounded by a probe timeout)
  // overlap instead of adding up.
  for (auto& c : checkers_) {
    if (c->probe) {
      c->probe->requestStop();
    }
    stopCustom(*c);
  }
  for (auto& p : procs_) {
    if (p.service_probe) {
      p.service_probe->requestStop();
    }
  }
  checkers_.clear();
  procs_.clear();
  for (const auto& h : handlers_) {
    loop_.unwatch(h.watch);
    sys::killProcessGroup(h.pid, SIGKILL);
    reapLater(h.pid, h.pidfd);
  }
}

void Monitor::reapLater(pid_t pid, int pidfd) {
  if (sys::reapChild(pid)) {
    close(pidfd);
    return;
  }
  // Not gone yet: a watch that needs nothing of this Monitor reaps it when it ends.
  auto id = std::make_shared<sys::EventLoop::Id>(0);
  sys::EventLoop& loop = loop_;
  auto w = loop.watchReadable(pidfd, [&loop, id, pid, pidfd] {
    if (sys::reapChild(pid)) {
      loop.unwatch(*id);
      close(pidfd);
    }
  });
  if (w.ok()) {
    *id = *w;
  } else {
    close(pidfd);
  }
}

void Monitor::seedSettings(const config::ModuleConfig& config) {
  // Shown as resources; a value an operator set earlier is kept (it persists).
  const std::pair<const char*, bool> defaults[] = {
      {"usersetting.checker", true},
      {"usersetting.errd", true},
      {"usersetting.failover", config.service.failover},
      {"usersetting.boot", false}};
  for (const auto& [name, on] : defaults) {
    auto r = resources_.get(name);
    if (r.ok() && !r->has_value()) {
      (void)resources_.set(name, on ? ResourceState::Up : ResourceState::Down, "default",
                           loop_.time().systemTime());
    }
  }
}

// The checkers a <vip> implies (reference 3.2.6): per <interface check="on">, its link
// (intf.<name>, or intf.<first VIP> when the interface is found from the VIP's subnet), active
// whenever the module runs; per <virtual_addr check="on">, its presence (ip.<addr>) on the
// primary. Rules interface_failure (wait) and ip_failure (stopstart) act on them.
template <typename Add>
void Monitor::addVipCheckers(const config::ModuleConfig& config, Add& add) {
  if (!config.vip || config.service.mode != config::Mode::Mirror) {
    return;
  }
  for (const auto& i : config.vip->interfaces) {
    if (i.addrs.empty()) {
      continue;
    }
    if (i.check) {
      const std::string vip = i.addrs.front().addr;
      const std::string ifname = i.name;
      add("intf." + (ifname.empty() ? vip : ifname), config::CheckWhen::Pre,
          ifname.empty() ? "interface of " + vip : ifname, kVipCheckInterval,
          [vip, ifname] { return probeVipInterface(vip, ifname); });
    }
    for (const auto& a : i.addrs) {
      if (a.check) {
        const std::string addr = a.addr;
        add("ip." + addr, config::CheckWhen::Prim, addr, kVipCheckInterval,
            [addr] { return sys::probeAddressPresent(addr); });
      }
    }
  }
}

void Monitor::addCheckers(const config::ModuleConfig& config) {
  auto add = [this](std::string resource, config::CheckWhen when, std::string target,
                    Millis interval, PeriodicProbe::Probe probe) {
    auto c = std::make_unique<Checker>();
    c->resource = std::move(resource);
    c->when = when;
    c->target = std::move(target);
    Checker* raw = c.get();
    if (probe) {
      c->probe = std::make_unique<PeriodicProbe>(
          loop_, interval, std::move(probe),
          [this, raw](const sys::ProbeOutcome& o) { onSample(*raw, o); });
    }
    setResource(c->resource, ResourceState::Init, kComponent);
    checkers_.push_back(std::move(c));
    return raw;
  };
  addVipCheckers(config, add);
  if (!config.check) {
    return;
  }
  const auto& ck = *config.check;
  for (const auto& t : ck.tcp) {
    add("tcp." + t.ident, t.when, t.addr + ":" + std::to_string(t.port), t.interval,
        [t] { return sys::probeTcp(t.addr, t.port, t.timeout); });
  }
  for (const auto& p : ck.ping) {
    add("ping." + p.ident, p.when, p.addr, p.interval,
        [p] { return sys::probePing(p.addr, p.timeout); });
  }
  for (const auto& i : ck.intf) {
    add("intf." + i.ident, i.when, i.local_addr, kIntfInterval,
        [i] { return sys::probeInterface(i.local_addr); });
  }
  for (const auto& i : ck.ip) {
    add("ip." + i.ident, i.when, i.addr, i.interval,
        [i] { return sys::probeAddressPresent(i.addr); });
  }
  for (const auto& m : ck.module) {
    const std::string socket = paths_.moduleSocket(m.name);
    // This node's own address is the local API: no web service needed.
    const bool remote =
        m.remote && m.addr != "127.0.0.1" && m.addr != "::1" && m.addr != "localhost";
    add("module." + m.ident, config::CheckWhen::Pre, remote ? m.addr : "local " + m.name,
        m.interval, [m, socket, remote]() -> sys::ProbeOutcome {
          if (remote) {
            return {false, "checking a module on " + m.addr +
                               " needs the Halo web service, which this build does not have"};
          }
          return probeModule(socket, m.name);
        });
  }
  for (const auto& cu : ck.custom) {
    Checker* c = add("custom." + cu.ident, cu.when, cu.exec, Millis(0), nullptr);
    c->exec = cu.exec;
    for (const auto& a : splitArgs(cu.arg)) {
      c->args.push_back(a);
    }
  }
}

std::vector<std::string> Monitor::splitArgs(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : text) {
    if (ch == ' ' || ch == '\t') {
      if (!cur.empty()) {
        out.push_back(cur);
        cur.clear();
      }
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) {
    out.push_back(cur);
  }
  return out;
}

void Monitor::setResource(const std::string& name, ResourceState state, const std::string& setter) {
  auto changed = resources_.set(name, state, setter, loop_.time().systemTime());
  if (changed.ok() && *changed && state != ResourceState::Init) {
    hooks_.log(LogLevel::Info, kComponent,
               "Resource " + name + " set to " + resourceStateName(state) + " by " + setter);
  }
}

bool Monitor::setting(const std::string& name, bool default_on) {
  auto r = resources_.get(name);
  if (!r.ok() || !r->has_value()) {
    return default_on;
  }
  return (*r)->state != ResourceState::Down;
}

void Monitor::onSample(Checker& c, const sys::ProbeOutcome& outcome) {
  const ResourceState before = c.health.state();
  const ResourceState after = c.health.sample(outcome.up);
  c.detail = outcome.detail;
  if (after != before) {
    if (after == ResourceState::Down) {
      hooks_.log(LogLevel::Error, kComponent, c.resource + " down: " + outcome.detail);
    }
    setResource(c.resource, after, kComponent);
    scheduleEvaluation();  // a timer the destructor cancels, unlike a post
  }
}

void Monitor::update(core::ModuleState state, core::Operation op,
                     std::optional<bool> waiting_by_rule) {
  state_ = state;
  op_ = op;
  // A started light module is WAIT (NotReady) only because a rule's wait put it there.
  waiting_by_rule_ = waiting_by_rule.value_or(
      state == core::ModuleState{core::MainState::Wait, core::Readiness::NotReady});
  applyActivation();
  scheduleEvaluation();
}

void Monitor::applyActivation() {
  const bool checkers_on = setting("usersetting.checker", true);
  for (auto& c : checkers_) {
    const bool active = checkers_on && whenActive(c->when, state_, op_);
    if (c->probe) {
      if (active != c->probe->active()) {
        c->probe->setActive(active);
        if (!active) {
          c->health.reset();
          setResource(c->resource, ResourceState::Init, kComponent);
        }
      }
    } else if (active && c->pid < 0) {
      startCustom(*c);
    } else if (!active && c->pid >= 0) {
      stopCustom(*c);
      setResource(c->resource, ResourceState::Init, kComponent);
    }
  }
  const bool errd_on = setting("usersetting.errd", true) && state_.main != core::MainState::Stop;
  if (errd_on && !errd_active_) {
    errd_active_ = true;
    scheduleErrd(Millis(0));
  } else if (!errd_on && errd_active_) {
    errd_active_ = false;
    loop_.cancelTimer(errd_timer_);
    errd_timer_ = 0;
  }
  for (auto& p : procs_) {
    if (p.service_probe && p.service_probe->active() != errd_on) {
      p.service_probe->setActive(errd_on);
      p.service_up.reset();
    }
  }
}

void Monitor::startCustom(Checker& c) {
  std::vector<std::string> args = {module_, c.resource};
  args.insert(args.end(), c.args.begin(), c.args.end());
  auto child = spawnModuleProgram(hooks_.script_context(), c.exec, args);
  if (!child.ok()) {
    hooks_.log(LogLevel::Error, kComponent,
               "Custom checker " + c.resource + " cannot start: " + child.status().message());
    return;
  }
  Checker* raw = &c;
  auto w = loop_.watchReadable(child->pidfd, [this, raw] {
    auto info = sys::reapChild(raw->pid);
    if (!info) {
      return;
    }
    hooks_.log(LogLevel::Error, kComponent,
               "Custom checker " + raw->resource + " exited (" + info->describe() +
                   "); starting it again in 5 s");
    loop_.unwatch(raw->watch);
    close(raw->pidfd);
    raw->pid = -1;
    raw->pidfd = -1;
    raw->watch = 0;
    // Its last word is stale now.
    setResource(raw->resource, ResourceState::Init, kComponent);
    loop_.cancelTimer(custom_restart_timer_);
    custom_restart_timer_ = loop_.addTimer(Millis(5000), [this] {
      custom_restart_timer_ = 0;
      applyActivation();
    });
  });
  if (!w.ok()) {
    sys::killProcessGroup(child->pid, SIGKILL);
    reapLater(child->pid, child->pidfd);
    hooks_.log(LogLevel::Error, kComponent,
               "Custom checker " + c.resource + " cannot be watched: " + w.status().message());
    return;
  }
  c.pid = child->pid;
  c.pidfd = child->pidfd;
  c.watch = *w;
}

void Monitor::stopCustom(Checker& c) {
  if (c.pid < 0) {
    return;
  }
  sys::killProcessGroup(c.pid, SIGKILL);
  loop_.unwatch(c.watch);
  reapLater(c.pid, c.pidfd);
  c.pid = -1;
  c.pidfd = -1;
  c.watch = 0;
}

std::unique_ptr<core::MapResourceView> Monitor::view() {
  auto v = std::make_unique<core::MapResourceView>();
  auto list = resources_.list();
  if (list.ok()) {
    for (const auto& r : *list) {
      // The peer's resources, as its heartbeats carry them, are "remote.<name>" here and
      // what rules read as remote.<class>.<id>.
      if (r.name.rfind("remote.", 0) == 0) {
        v->set(core::Side::Remote, r.name.substr(7), r.state);
      } else {
        v->set(r.name, r.state);
      }
    }
  }
  return v;
}

Monitor::Gate Monitor::gate() {
  if (!setting("usersetting.checker", true)) {
    return Gate::Go;
  }
  auto v = view();
  if (machine_.waitInit(*v)) {
    return Gate::Hold;
  }
  for (const auto& rule : machine_.rules()) {
    if (rule.action.kind == core::ActionKind::Wait && core::evaluate(*rule.condition, *v)) {
      return Gate::Wait;
    }
  }
  return Gate::Go;
}

void Monitor::scheduleEvaluation() {
  if (state_.main == core::MainState::Stop) {
    return;
  }
  // Now, not at the next period: a start held at the gate or a changed state is decided at once.
  loop_.cancelTimer(eval_timer_);
  eval_timer_ = loop_.addTimer(Millis(0), [this] {
    eval_timer_ = 0;
    evaluate();
  });
}

void Monitor::refresh() {
  applyActivation();
  evaluate();
}

void Monitor::evaluate() {
  loop_.cancelTimer(eval_timer_);
  eval_timer_ = 0;
  if (state_.main == core::MainState::Stop && op_ == core::Operation::None) {
    return;
  }
  // Periodic: rules see resources that change outside (halo set from custom checkers).
  eval_timer_ = loop_.addTimer(machine_.period(), [this] {
    eval_timer_ = 0;
    evaluate();
  });
  if (op_ != core::Operation::None) {
    return;  // an operation is running: decide once it ended
  }
  if (state_ == core::ModuleState{core::MainState::Wait, core::Readiness::Transient}) {
    switch (gate()) {
      case Gate::Hold:
        return;
      case Gate::Wait:
        hooks_.request(core::Operation::Wait, "failover rules", {});
        return;
      case Gate::Go:
        hooks_.request(core::Operation::Wakeup, "start", {});
        return;
    }
  }
  auto v = view();
  core::ModuleSituation situation;
  situation.waiting_by_rule = waiting_by_rule_;
  situation.actions_enabled = setting("usersetting.checker", true);
  const core::Decision d = machine_.evaluate(*v, loop_.time().monotonicTime(), situation);
  for (const auto& a : d.assignments) {
    if (a.assignment) {
      setResource(a.assignment->target.toString(), a.assignment->state, a.label);
    }
  }
  if (d.action) {
    auto op = operationFor(d.action->kind);
    if (!op) {
      hooks_.log(LogLevel::Info, kComponent,
                 "Rule " + d.action->label + " asks for " + core::actionKindName(d.action->kind) +
                     ", which applies to mirror modules only");
    } else {
      hooks_.request(*op, d.action->label, {});
    }
  } else if (d.wakeup && state_.main == core::MainState::Wait) {
    hooks_.request(core::Operation::Wakeup, std::string(core::kImplicitWakeupLabel), {});
  }
}

void Monitor::scheduleErrd(Millis delay) {
  loop_.cancelTimer(errd_timer_);
  errd_timer_ = loop_.addTimer(delay, [this] {
    errd_timer_ = 0;
    pollErrd();
    if (errd_active_) {
      scheduleErrd(polltimer_);
    }
  });
}

void Monitor::pollErrd() {
  if (procs_.empty()) {
    return;
  }
  core::ModulePhases phases;
  phases.pre_active = whenActive(config::CheckWhen::Pre, state_, op_);
  phases.both_active = whenActive(config::CheckWhen::Both, state_, op_);
  std::set<std::string> enabled;
  auto list = resources_.list();
  if (list.ok()) {
    for (const auto& r : *list) {
      if (r.name.rfind("errdclass.", 0) == 0 && r.state == ResourceState::Up) {
        enabled.insert(r.name.substr(10));
      }
    }
  }
  std::vector<core::ProcEntry> entries;
  auto scanned = sys::scanProcesses();
  if (scanned.ok()) {
    for (const auto& p : *scanned) {
      entries.push_back(core::ProcEntry{p.pid, p.comm, p.cmdline});
    }
  }
  for (auto& p : procs_) {
    const std::string resource = "proc." + p.config.name;
    if (!core::classActive(p.config.proc_class, phases, enabled)) {
      if (p.state.polls > 0 || p.last != ResourceState::Init) {
        p.state = {};
        p.last = ResourceState::Init;
        setResource(resource, ResourceState::Init, "errd");
      }
      continue;
    }
    int count = 0;
    if (p.config.service) {
      if (!p.service_up) {
        continue;  // its probe has not answered yet
      }
      count = *p.service_up ? 1 : 0;
    } else {
      count = core::countMatches(p.config, entries);
    }
    const core::ErrdVerdict v = core::judge(p.config, count, p.state);
    p.state = v.next;
    p.detail = v.reason.empty() ? std::to_string(count) + " running" : v.reason;
    if (v.state != p.last) {
      p.last = v.state;
      setResource(resource, v.state, "errd");
    }
    if (!v.act) {
      continue;
    }
    hooks_.log(LogLevel::Error, "errd", v.reason);
    switch (p.config.action) {
      case config::ProcAction::Restart: {
        std::vector<std::string> extra;
        if (p.config.service && !p.config.restart_services.empty()) {
          std::string services;
          for (const auto& svc : p.config.restart_services) {
            services += (services.empty() ? "" : ", ") + svc;
          }
          extra = {"-Services", services};  // reference 3.2.10: restart only these services
        }
        hooks_.request(core::Operation::Restart, "errd", extra);
        break;
      }
      case config::ProcAction::Stopstart:
        hooks_.request(core::Operation::Stopstart, "errd", {});
        break;
      case config::ProcAction::Stop:
        hooks_.request(core::Operation::Stop, "errd", {});
        break;
      case config::ProcAction::Noaction:
        break;
      case config::ProcAction::Handler:
        runHandler(p);
        break;
    }
  }
}

void Monitor::runHandler(const Proc& p) {
  auto child = spawnModuleProgram(hooks_.script_context(), p.config.handler,
                                  {module_, "proc." + p.config.name});
  const std::string path = p.config.handler;
  if (!child.ok()) {
    hooks_.log(LogLevel::Error, "errd",
               "Handler " + path + ": " + child.status().message() + "; stopstart instead");
    hooks_.request(core::Operation::Stopstart, "errd", {});
    return;
  }
  // Handlers are short (reference: exit 0 on success, else stopstart): watch the exit.
  const pid_t pid = child->pid;
  const int fd = child->pidfd;
  auto w = loop_.watchReadable(fd, [this, pid, fd, path] {
    auto info = sys::reapChild(pid);
    if (!info) {
      return;
    }
    for (auto it = handlers_.begin(); it != handlers_.end(); ++it) {
      if (it->pid == pid) {
        loop_.unwatch(it->watch);
        handlers_.erase(it);
        break;
      }
    }
    close(fd);
    if (!info->success()) {
      hooks_.log(LogLevel::Error, "errd",
                 "Handler " + path + " failed (" + info->describe() + "); stopstart");
      hooks_.request(core::Operation::Stopstart, "errd", {});
    }
  });
  if (!w.ok()) {
    sys::killProcessGroup(pid, SIGKILL);
    reapLater(pid, fd);
    hooks_.request(core::Operation::Stopstart, "errd", {});
    return;
  }
  handlers_.push_back(Handler{pid, fd, *w});
}

bool Monitor::countAutomatic() {
  return loop_counter_.recordAutomaticAction(loop_.time().systemTime());
}

void Monitor::resetLoop() { loop_counter_.reset(); }

proto::Reply Monitor::loopCommand(const std::string& verb, const std::string& identity) {
  const auto now = loop_.time().systemTime();
  const std::string status = std::to_string(loop_counter_.count()) + " automatic action(s) of " +
                             std::to_string(loop_counter_.maxloop()) + " allowed";
  if (verb == "resetloop") {
    loop_counter_.reset();
    return proto::okReply("maxloop counter reset");
  }
  if (verb == "checkloop") {
    return loop_counter_.wouldExceed(now) ? proto::errorReply("maxloop reached: " + status)
                                          : proto::okReply(status);
  }
  if (!loop_counter_.recordAutomaticAction(now)) {
    hooks_.log(LogLevel::Error, kComponent, "maxloop reached (incloop by " + identity + ")");
    return proto::errorReply("maxloop reached: " + status);
  }
  return proto::okReply("counted for " + identity + ": " + std::to_string(loop_counter_.count()) +
                        " of " + std::to_string(loop_counter_.maxloop()));
}

nlohmann::json Monitor::describe() const {
  nlohmann::json checkers = nlohmann::json::array();
  for (const auto& c : checkers_) {
    const bool active = c->probe ? c->probe->active() : c->pid >= 0;
    // Custom checkers set their resource themselves: show what they set.
    ResourceState state = c->health.state();
    if (!c->probe) {
      auto r = resources_.get(c->resource);
      state = r.ok() && r->has_value() ? (*r)->state : ResourceState::Init;
    }
    checkers.push_back({{"resource", c->resource},
                        {"when", config::checkWhenName(c->when)},
                        {"target", c->target},
                        {"active", active},
                        {"state", resourceStateName(state)},
                        {"detail", c->detail}});
  }
  nlohmann::json procs = nlohmann::json::array();
  for (const auto& p : procs_) {
    procs.push_back({{"resource", "proc." + p.config.name},
                     {"class", p.config.proc_class},
                     {"state", resourceStateName(p.last)},
                     {"detail", p.detail}});
  }
  return {{"checkers", checkers},
          {"procs", procs},
          {"loop", {{"count", loop_counter_.count()}, {"maxloop", loop_counter_.maxloop()}}}};
}

}  // namespace halo::module
