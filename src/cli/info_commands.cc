// halo log | logsave | printi | printe | cmdlog | level | get | set | boot | -p
#include <iostream>

#include "cli/commands.h"
#include "module/module_log.h"
#include "module/node_db.h"
#include "module/resource_store.h"
#include "module/tools.h"
#include "sys/files.h"

namespace halo::cli {

namespace {
Result<ResourceStore> openResources(const Cli& cli, const std::string& m) {
  HALO_RETURN_IF_ERROR(sys::makeDirs(cli.paths.moduleVarDir(m)));
  return ResourceStore::open(cli.paths.moduleResourceDb(m));
}
}  // namespace

int showLog(Cli& cli, int count, bool all) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  if (!sys::pathExists(cli.paths.moduleLogDb(cli.module))) {
    return kExitOk;  // nothing logged yet
  }
  auto log = ModuleLog::open(cli.paths.moduleLogDb(cli.module), cli.module);
  auto lines = log.ok() ? log->lastLines(count, all)
                        : Result<std::vector<std::string>>(log.status());
  if (!lines.ok()) {
    return cli.fail(lines.status());
  }
  for (const auto& l : *lines) {
    std::cout << l << "\n";
  }
  return kExitOk;
}

int saveLog(Cli& cli, const std::string& file, bool all) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto log = ModuleLog::open(cli.paths.moduleLogDb(cli.module), cli.module);
  s = log.ok() ? log->saveTo(file, all) : log.status();
  if (!s.ok()) {
    return cli.fail(s);
  }
  std::cout << "Log of module " << cli.module << " saved to " << file << "\n";
  return kExitOk;
}

int printMessage(Cli& cli, char level, const std::string& message) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto log = ModuleLog::open(cli.paths.moduleLogDb(cli.module), cli.module);
  auto lvl = parseLogLevel(level);
  s = log.ok() ? log->append(cli.time.systemTime(), *lvl, "script", message) : log.status();
  return s.ok() ? kExitOk : cli.fail(s);
}

int showCmdlog(Cli& cli, int count) {
  auto db = NodeDb::open(cli.paths.nodeDb());
  auto lines = db.ok() ? db->commandLog(count) : Result<std::vector<std::string>>(db.status());
  if (!lines.ok()) {
    return cli.fail(lines.status());
  }
  for (const auto& l : *lines) {
    std::cout << l << "\n";
  }
  return kExitOk;
}

int showLevel(Cli& cli) {
  std::cout << "Halo " << HALO_VERSION << " (open source: no license key needed)\n";
  if (cli.module.empty()) {
    return kExitOk;
  }
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto rc = cli.runScript(cli.module, cli.paths.activeBinDir(cli.module),
                          cli.paths.activeConfDir(cli.module), "level", {});
  return rc && *rc != 0 ? cli.fail("script level failed with exit code " + std::to_string(*rc))
                        : kExitOk;
}

int getResource(Cli& cli, const std::string& name) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto res = openResources(cli, cli.module);
  auto r = res.ok() ? res->get(name)
                    : Result<std::optional<ResourceRecord>>(res.status());
  if (!r.ok()) {
    return cli.fail(r.status());
  }
  if (!r->has_value()) {
    return cli.fail("module " + cli.module + " has no resource '" + name +
                    "' (list them with halo state -v -m " + cli.module + ")");
  }
  const auto& rec = **r;
  std::cout << rec.name << " = " << (rec.value.empty() ? resourceStateName(rec.state) : rec.value)
            << " (set by " << rec.setter << " at " << formatLogTime(rec.changed_at) << ")\n";
  auto history = res->history(name, 10);
  if (history.ok() && history->size() > 1) {
    std::cout << "history (oldest first):\n";
    for (const auto& h : *history) {
      std::cout << "  " << formatLogTime(h.at) << "  "
                << (h.value.empty() ? resourceStateName(h.state) : h.value) << "  by " << h.setter
                << "\n";
    }
  }
  return kExitOk;
}

int setResource(Cli& cli, const std::string& name, const std::string& value) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto state = parseResourceState(value);
  if (!state.ok()) {
    return cli.fail(state.status().message(), kExitUsage);
  }
  auto res = openResources(cli, cli.module);
  const std::string setter = cli.identity.empty() ? "admin" : cli.identity;
  auto changed = res.ok() ? res->set(name, *state, setter, cli.time.systemTime())
                          : Result<bool>(res.status());
  if (!changed.ok()) {
    return cli.fail(changed.status());
  }
  if (*changed) {
    cli.moduleLog(cli.module, 'I', "Resource " + name + " set to " + value + " by " + setter);
  }
  cli.refreshRuntime(cli.module);
  return kExitOk;
}

int bootSetting(Cli& cli, const std::string& what) {
  if (what == "status") {
    const auto mods = cli.module.empty() ? cli.installedModules()
                                         : std::vector<std::string>{cli.module};
    for (const auto& m : mods) {
      Status s = cli.requireInstalled(m);
      if (!s.ok()) {
        return cli.fail(s);
      }
      auto res = openResources(cli, m);
      auto r = res.ok() ? res->get("usersetting.boot")
                        : Result<std::optional<ResourceRecord>>(res.status());
      const bool on = r.ok() && r->has_value() && (*r)->state == ResourceState::Up;
      auto cfg = cli.installedConfig(m);
      std::string forced;
      if (cfg.ok() && cfg->service.boot != config::Boot::Ignore) {
        forced = cfg->service.boot == config::Boot::On    ? "on"
                 : cfg->service.boot == config::Boot::Off ? "off"
                                                          : "auto";
      }
      std::cout << m << ": boot " << (forced.empty() ? (on ? "on" : "off") : forced)
                << (forced.empty() ? " (halo boot setting)"
                                   : " (forced by <service boot=\"" + forced + "\">)")
                << "\n";
    }
    return kExitOk;
  }
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto res = openResources(cli, cli.module);
  auto changed = res.ok() ? res->set("usersetting.boot",
                                     what == "on" ? ResourceState::Up : ResourceState::Down,
                                     cli.identity.empty() ? "admin" : cli.identity,
                                     cli.time.systemTime())
                          : Result<bool>(res.status());
  if (!changed.ok()) {
    return cli.fail(changed.status());
  }
  cli.refreshRuntime(cli.module);
  std::cout << "Module " << cli.module << " boot " << what << "\n";
  return kExitOk;
}

int printPaths(Cli& cli) {
  const auto& p = cli.paths;
  const std::string cli_path = module::findTool("halo");
  std::cout << "HALO_ROOT=" << p.root << "\nHALO_ETC=" << p.etc << "\nHALO_VAR=" << p.var
            << "\nHALO_RUN=" << p.run << "\nHALO_LOG=" << p.log
            << "\nHALO_BIN=" << cli_path.substr(0, cli_path.rfind('/'))
            << "\nSAFE=" << module::installPrefix() << "\nSAFEVAR=" << p.var << "\n";
  return kExitOk;
}

}  // namespace halo::cli
