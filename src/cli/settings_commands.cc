// halo errd on|off|suspend|resume|enable|disable|list, halo checker on|off,
// halo failover on|off (persistent settings, seed 2.1.11), halo incloop|resetloop|checkloop
#include <iomanip>
#include <iostream>

#include "cli/commands.h"
#include "module/resource_store.h"
#include "sys/files.h"

namespace halo::cli {

namespace {

// Settings are resources (usersetting.*) in the module's resource database, so they can be
// changed while the module is stopped and survive stop/start and daemon restarts. A running
// runtime is told to re-read them at once.
int writeSetting(Cli& cli, const std::string& resource, bool on, const std::string& what) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  s = sys::makeDirs(cli.paths.moduleVarDir(cli.module));
  auto res = s.ok() ? ResourceStore::open(cli.paths.moduleResourceDb(cli.module))
                    : Result<ResourceStore>(s);
  const std::string setter = cli.identity.empty() ? "admin" : cli.identity;
  auto changed = res.ok() ? res->set(resource, on ? ResourceState::Up : ResourceState::Down,
                                     setter, cli.time.systemTime())
                          : Result<bool>(res.status());
  if (!changed.ok()) {
    return cli.fail(changed.status());
  }
  if (*changed) {
    cli.moduleLog(cli.module, 'U', "Resource " + resource + " set to " +
                                       (on ? "up" : "down") + " by " + setter);
  }
  cli.refreshRuntime(cli.module);
  std::cout << "Module " << cli.module << ": " << what << " " << (on ? "on" : "off") << "\n";
  return kExitOk;
}

}  // namespace

int settingSwitch(Cli& cli, const std::string& setting, const std::string& value) {
  return writeSetting(cli, "usersetting." + setting, value == "on", setting);
}

int errdCommand(Cli& cli, const std::string& sub, const std::string& arg) {
  if (sub == "on" || sub == "resume") {
    return writeSetting(cli, "usersetting.errd", true, "process monitoring");
  }
  if (sub == "off" || sub == "suspend") {
    return writeSetting(cli, "usersetting.errd", false, "process monitoring");
  }
  if (sub == "enable" || sub == "disable") {
    if (arg.empty()) {
      return cli.fail("errd " + sub + " needs a class name (e.g. halo errd " + sub +
                      " maintenance -m AM)", kExitUsage);
    }
    return writeSetting(cli, "errdclass." + arg, sub == "enable", "process class " + arg);
  }
  // list: what the runtime monitors now, else what the configuration declares.
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  const auto st = cli.moduleState(cli.module);
  if (st.runtime_alive && st.details.contains("procs")) {
    for (const auto& p : st.details["procs"]) {
      std::cout << std::left << std::setw(24) << p.value("resource", "") << " "
                << p.value("state", "") << "  " << p.value("detail", "") << "\n";
    }
    return kExitOk;
  }
  auto cfg = cli.installedConfig(cli.module);
  if (!cfg.ok()) {
    return cli.fail(cfg.status());
  }
  if (cfg->errd) {
    for (const auto& p : cfg->errd->procs) {
      std::cout << "proc." << p.name << "  class " << p.proc_class << " (not running)\n";
    }
  }
  return kExitOk;
}

int loopCommand(Cli& cli, const std::string& verb) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  if (verb == "incloop" && cli.identity.empty()) {
    return cli.fail("incloop needs -i IDENTITY (the handler that counts an action)", kExitUsage);
  }
  auto r = cli.runtime(cli.module, proto::Request{verb, cli.module, cli.identity, {}});
  if (!r.ok()) {
    return cli.fail("module " + cli.module + " is not started; the loop counter exists only "
                    "while it runs");
  }
  if (!r->message.empty()) {
    (r->ok() ? std::cout : std::cerr) << r->message << "\n";
  }
  return r->exit_code;
}

}  // namespace halo::cli
