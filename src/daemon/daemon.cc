#include "daemon/daemon.h"

#include <syslog.h>
#include <unistd.h>

#include "config/module_config.h"
#include "module/module_log.h"
#include "module/resource_store.h"
#include "module/runtime_state.h"
#include "module/tools.h"
#include "proto/api.h"
#include "sys/files.h"

namespace halo::daemon {

std::optional<Millis> bootDelay(const Paths& paths, const std::string& module,
                                bool was_started) {
  auto cfg = config::parseModuleConfigFile(paths.activeConfDir(module) + "/userconfig.xml",
                                           config::processEnvironment());
  if (!cfg.ok()) {
    return std::nullopt;  // not configured, or invalid: nothing to start
  }
  bool enabled = false;
  switch (cfg->service.boot) {
    case config::Boot::On: enabled = true; break;
    case config::Boot::Off: enabled = false; break;
    case config::Boot::Auto: enabled = was_started; break;
    case config::Boot::Ignore: {
      auto res = ResourceStore::open(paths.moduleResourceDb(module));
      auto r = res.ok() ? res->get("usersetting.boot")
                        : Result<std::optional<ResourceRecord>>(res.status());
      enabled = r.ok() && r->has_value() && (*r)->state == ResourceState::Up;
      break;
    }
  }
  return enabled ? std::optional(cfg->service.boot_delay) : std::nullopt;
}

Result<std::unique_ptr<Daemon>> Daemon::create(Paths paths, sys::EventLoop& loop) {
  const std::string exe = module::findTool("halo-module");
  if (exe.empty()) {
    return notFound("cannot find the halo-module executable next to halod; reinstall Halo");
  }
  for (const auto& d : {paths.etc, paths.var, paths.run, paths.log, paths.run + "/modules"}) {
    HALO_RETURN_IF_ERROR(sys::makeDirs(d));
  }
  return std::unique_ptr<Daemon>(new Daemon(std::move(paths), loop, exe));
}

Daemon::Daemon(Paths paths, sys::EventLoop& loop, std::string runtime_exe)
    : paths_(std::move(paths)),
      loop_(loop),
      supervisor_(paths_, loop, std::move(runtime_exe),
                  [this](const std::string& m, char level, const std::string& msg) {
                    logModule(m, level, msg);
                  }) {}

void Daemon::logModule(const std::string& module, char level, const std::string& message) {
  auto lvl = parseLogLevel(level);
  auto log = ModuleLog::open(paths_.moduleLogDb(module), module);
  if (log.ok() && lvl.ok()) {
    if (log->append(loop_.time().systemTime(), *lvl, "halod", message).ok()) {
      return;
    }
  }
  fprintf(stderr, "halod: %s: %s\n", module.c_str(), message.c_str());
}

std::vector<std::string> Daemon::installedModules() const {
  std::vector<std::string> out;
  for (const auto& name : sys::listDir(paths_.etc + "/modules")) {
    if (sys::pathExists(paths_.moduleUserConfig(name))) {
      out.push_back(name);
    }
  }
  return out;
}

Status Daemon::begin() {
  HALO_ASSIGN_OR_RETURN(server_, sys::LineServer::listen(loop_, paths_.daemonSocket(),
                                                         [this](auto conn, const auto& line) {
                                                           onRequest(conn, line);
                                                         }));
  HALO_RETURN_IF_ERROR(
      sys::writeFileAtomic(paths_.daemonPidFile(), std::to_string(getpid()) + "\n"));
  const std::string marker = paths_.run + "/booted";
  if (!sys::pathExists(marker)) {
    bootStart();
    HALO_RETURN_IF_ERROR(sys::writeFileAtomic(marker, "boot handled\n"));
  } else {
    supervisor_.adoptExisting(installedModules());
  }
  return okStatus();
}

void Daemon::bootStart() {
  for (const auto& m : installedModules()) {
    auto persisted = module::loadPersistedState(paths_, m);
    const bool was_started = persisted.ok() && persisted->state.main != core::MainState::Stop;
    // After a reboot nothing of the module runs, whatever its state file says.
    (void)sys::removeTree(paths_.runtimeStateFile(m));
    const auto delay = bootDelay(paths_, m, was_started);
    if (!delay) {
      continue;
    }
    boot_pending_.insert(m);
    loop_.addTimer(*delay, [this, m] {
      boot_pending_.erase(m);
      logModule(m, 'U', "Action start called by boot");
      supervisor_.start(m, "start", [this, m](const proto::Reply& r) {
        if (!r.ok()) {
          logModule(m, 'E', "Boot start failed: " + r.message);
        }
      });
    });
  }
}

void Daemon::onRequest(sys::LineServer::ConnId conn, const std::string& line) {
  auto req = proto::decodeRequest(line);
  if (!req.ok()) {
    server_->reply(conn, proto::encodeReply(
                             proto::errorReply("malformed request: " + req.status().message(), 2)));
    return;
  }
  if (req->cmd == "ping") {
    server_->reply(conn, proto::encodeReply(proto::okReply(
                             "halod " HALO_VERSION, {{"pid", getpid()}, {"root", paths_.root}})));
    return;
  }
  if (req->cmd == "runtimes") {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [name, pid] : supervisor_.runtimes()) {
      list.push_back({{"module", name}, {"pid", pid}});
    }
    for (const auto& name : boot_pending_) {
      list.push_back({{"module", name}, {"pid", -1}, {"pending", "boot"}});
    }
    server_->reply(conn, proto::encodeReply(proto::okReply("", {{"runtimes", list}})));
    return;
  }
  if (req->cmd == "start") {
    if (!sys::pathExists(paths_.moduleUserConfig(req->module))) {
      server_->reply(conn, proto::encodeReply(proto::errorReply(
                               "module '" + req->module +
                               "' is not installed; see halo module list")));
      return;
    }
    const std::string verb = req->params.value("verb", "start");
    if (verb != "start" && verb != "prim" && verb != "second" && verb != "primforce") {
      server_->reply(conn, proto::encodeReply(proto::errorReply(
                               "unknown start verb '" + verb + "'", 2)));
      return;
    }
    supervisor_.start(req->module, verb, [this, conn](const proto::Reply& r) {
      server_->reply(conn, proto::encodeReply(r));
    });
    return;
  }
  server_->reply(conn,
                 proto::encodeReply(proto::errorReply("unknown command '" + req->cmd + "'", 2)));
}

}  // namespace halo::daemon
