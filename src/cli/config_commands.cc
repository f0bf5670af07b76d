// halo config | confcheck | confinfo | deconfig -m AM, and halo cluster config | confcheck | state
#include <pugixml.hpp>
#include <sys/stat.h>

#include <ctime>
#include <iostream>

#include "base/strings.h"
#include "cli/commands.h"
#include "cli/keys.h"
#include "config/cluster_config.h"
#include "config/validate.h"
#include "core/failover_machine.h"
#include "module/node_db.h"
#include "sys/files.h"

namespace halo::cli {

namespace {

// Scripts Halo calls by name (reference 4.1); a present one must be executable.
constexpr const char* kKnownScripts[] = {
    "prestart",  "poststop",     "start_prim", "stop_prim", "start_both", "stop_both",
    "start_second", "stop_second", "start_sec", "stop_sec", "transition", "update",
    "config",    "postconfig",   "deconfig",   "confcheck", "state",      "level"};

Status checkScripts(const std::string& bin_dir) {
  for (const char* name : kKnownScripts) {
    const std::string p = bin_dir + "/" + name;
    if (sys::pathExists(p) && !sys::isExecutableFile(p)) {
      return invalidArgument(p + ": script is not executable (run chmod +x " + p + ")");
    }
  }
  return okStatus();
}

// What must not change while the module runs (reference 3.2: <farm>, <vip>, <vhost>,
// <failover> and the mode are not dynamic). Compared on the macro-expanded documents.
std::vector<std::string> nonDynamicChanges(const std::string& old_xml, const std::string& new_xml) {
  pugi::xml_document a;
  pugi::xml_document b;
  a.load_string(old_xml.c_str());
  b.load_string(new_xml.c_str());
  std::vector<std::string> out;
  auto sa = a.child("safe").child("service");
  auto sb = b.child("safe").child("service");
  if (std::string(sa.attribute("mode").value()) != sb.attribute("mode").value()) {
    out.push_back("service mode");
  }
  for (const char* el : {"farm", "vip", "vhost", "failover"}) {
    std::ostringstream x;
    std::ostringstream y;
    sa.child(el).print(x, "", pugi::format_raw);
    sb.child(el).print(y, "", pugi::format_raw);
    if (x.str() != y.str()) {
      out.push_back(std::string("<") + el + ">");
    }
  }
  return out;
}

// Executables the configuration names (custom checkers, errd handlers) must exist and run.
Status checkExecutables(const config::ModuleConfig& cfg, const std::string& file,
                        const std::string& bin_dir) {
  auto check = [&](const std::string& path, int line, const std::string& what) -> Status {
    const std::string full = !path.empty() && path[0] == '/' ? path : bin_dir + "/" + path;
    if (!sys::pathExists(full)) {
      return invalidArgument(file + ":" + std::to_string(line) + ": " + what + " '" + path +
                             "' not found (looked for " + full + ")");
    }
    if (!sys::isExecutableFile(full)) {
      return invalidArgument(file + ":" + std::to_string(line) + ": " + what + " '" + path +
                             "' is not executable (run chmod +x " + full + ")");
    }
    return okStatus();
  };
  if (cfg.check) {
    for (const auto& c : cfg.check->custom) {
      HALO_RETURN_IF_ERROR(check(c.exec, c.line, "<custom> exec"));
    }
  }
  if (cfg.errd) {
    for (const auto& p : cfg.errd->procs) {
      if (p.action == config::ProcAction::Handler) {
        HALO_RETURN_IF_ERROR(check(p.handler, p.line, "<proc> action handler"));
      }
    }
  }
  return okStatus();
}

Result<config::ModuleConfig> validateInstalled(const Cli& cli, const std::string& m) {
  HALO_ASSIGN_OR_RETURN(config::ModuleConfig cfg, cli.installedConfig(m));
  const std::string cluster = cli.paths.clusterXml();
  if (sys::pathExists(cluster)) {
    HALO_ASSIGN_OR_RETURN(config::ClusterConfig c, config::parseClusterConfigFile(cluster));
    HALO_RETURN_IF_ERROR(config::validateAgainstCluster(cfg, c));
  } else if (cfg.service.mode != config::Mode::Light) {
    return failedPrecondition(std::string("a ") + config::modeName(cfg.service.mode) +
                              " module needs the cluster configuration: run halo cluster config "
                              "FILE first");
  }
  HALO_RETURN_IF_ERROR(checkScripts(cli.paths.moduleBinDir(m)));
  HALO_RETURN_IF_ERROR(
      checkExecutables(cfg, cli.paths.moduleUserConfig(m), cli.paths.moduleBinDir(m)));
  // Failover rules compile here, so a syntax error is reported with line and column before
  // anything is applied.
  auto rules = core::makeFailoverMachine(cfg);
  if (!rules.ok()) {
    return rules.status();
  }
  return cfg;
}

std::string mtimeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return "-";
  }
  char buf[32];
  std::tm tm{};
  localtime_r(&st.st_mtime, &tm);
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

}  // namespace

int moduleConfig(Cli& cli) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  const std::string& m = cli.module;
  const std::string unchanged = "; the active configuration is unchanged";
  auto cfg = validateInstalled(cli, m);
  if (!cfg.ok()) {
    return cli.fail(cfg.status().message() + unchanged);
  }
  const auto st = cli.moduleState(m);
  const bool running = st.runtime_alive || st.state.main != core::MainState::Stop;
  if (running) {
    auto old = sys::readFile(cli.paths.activeConfDir(m) + "/safeconf.xml");
    if (old.ok()) {
      auto changes = nonDynamicChanges(*old, cfg->expanded_xml);
      if (!changes.empty()) {
        return cli.fail("module " + m + " is running (" + st.state.describe() + ") and " +
                        join(changes, ", ") +
                        " cannot change while it runs: stop it, then run halo config -m " + m +
                        unchanged);
      }
    }
  }
  // Stage the new active configuration beside the old one, run config and postconfig against
  // it, and only then swap it in.
  auto stage = sys::makeTempDir(cli.paths.moduleVarDir(m), "active-new");
  if (!stage.ok()) {
    return cli.fail(stage.status());
  }
  const std::string conf = *stage + "/conf";
  const std::string bin = *stage + "/bin";
  s = sys::copyTree(cli.paths.moduleConfDir(m), conf);
  if (s.ok()) {
    s = sys::makeDirs(bin);
  }
  if (s.ok() && sys::pathExists(cli.paths.moduleBinDir(m))) {
    s = sys::copyTree(cli.paths.moduleBinDir(m), bin);
  }
  if (s.ok()) {
    s = sys::writeFileAtomic(conf + "/safeconf.xml", cfg->expanded_xml);
  }
  for (const char* script : {"config", "postconfig"}) {
    if (!s.ok()) {
      break;
    }
    auto rc = cli.runScript(m, bin, conf, script, {});
    if (rc && *rc != 0) {
      s = failedPrecondition(std::string("script ") + script + " failed with exit code " +
                             std::to_string(*rc));
    }
  }
  if (s.ok()) {
    s = sys::replaceDir(*stage, cli.paths.activeDir(m));
  }
  if (!s.ok()) {
    (void)sys::removeTree(*stage);
    return cli.fail(s.message() + unchanged);
  }
  for (const auto& w : cfg->warnings) {
    std::cerr << "halo: warning: " << w << "\n";
  }
  cli.moduleLog(m, 'U', "Configuration applied (halo config)");
  if (running && !st.runtime_alive) {
    std::cout << "Module " << m << " configured; its runtime, being restarted, will apply it\n";
  } else if (running) {
    auto r = cli.runtime(m, proto::Request{"reload", m, cli.identity, {}});
    if (!r.ok() || !r->ok()) {
      return cli.fail("configuration written but the running module did not reload it: " +
                      (r.ok() ? r->message : r.status().message()) +
                      "; restart it with halo stopstart -m " + m);
    }
    std::cout << "Module " << m << " configured; the running module applied it dynamically\n";
  } else {
    std::cout << "Module " << m << " configured; start it with: halo start -m " << m << "\n";
  }
  return kExitOk;
}

int moduleConfcheck(Cli& cli) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto cfg = validateInstalled(cli, cli.module);
  if (!cfg.ok()) {
    return cli.fail(cfg.status());
  }
  auto rc = cli.runScript(cli.module, cli.paths.moduleBinDir(cli.module),
                          cli.paths.moduleConfDir(cli.module), "confcheck", {});
  if (rc && *rc != 0) {
    return cli.fail("script confcheck failed with exit code " + std::to_string(*rc));
  }
  for (const auto& w : cfg->warnings) {
    std::cerr << "halo: warning: " << w << "\n";
  }
  std::cout << "Configuration of module " << cli.module << " is valid ("
            << config::modeName(cfg->service.mode) << " module)\n";
  return kExitOk;
}

int moduleConfinfo(Cli& cli) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  const std::string installed = cli.paths.moduleUserConfig(cli.module);
  const std::string active = cli.paths.activeConfDir(cli.module) + "/userconfig.xml";
  const std::string a = fileSha256(active);
  const std::string i = fileSha256(installed);
  std::cout << "active    " << (a.empty() ? "(not configured)" : a) << "  " << mtimeOf(active)
            << "\ninstalled " << i << "  " << mtimeOf(installed) << "\n"
            << (a == i ? "The active configuration is the installed one\n"
                       : "They differ: apply the installed one with halo config -m " +
                             cli.module + "\n");
  return kExitOk;
}

int moduleDeconfig(Cli& cli) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  const std::string& m = cli.module;
  if (cli.moduleStarted(m)) {
    return cli.fail("module " + m + " is running; stop it first (halo stop -m " + m + ")");
  }
  if (!sys::pathExists(cli.paths.activeDir(m))) {
    return cli.fail("module " + m + " is not configured");
  }
  auto rc = cli.runScript(m, cli.paths.activeBinDir(m), cli.paths.activeConfDir(m), "deconfig",
                          {});
  if (rc && *rc != 0) {
    return cli.fail("script deconfig failed with exit code " + std::to_string(*rc) +
                    "; the module stays configured");
  }
  s = sys::removeTree(cli.paths.activeDir(m));
  if (!s.ok()) {
    return cli.fail(s);
  }
  cli.moduleLog(m, 'U', "Configuration removed (halo deconfig)");
  std::cout << "Module " << m << " deconfigured\n";
  return kExitOk;
}

int clusterConfcheck(Cli& cli, const std::string& file) {
  auto c = config::parseClusterConfigFile(file);
  if (!c.ok()) {
    return cli.fail(c.status());
  }
  std::cout << file << ": valid cluster configuration (" << c->lans.size() << " lan(s), nodes "
            << join(c->nodeNames(), ", ") << ")\n";
  return kExitOk;
}

int clusterConfig(Cli& cli, const std::string& file) {
  const std::string target = cli.paths.clusterXml();
  const std::string source = file.empty() ? target : file;
  auto c = config::parseClusterConfigFile(source);
  if (!c.ok()) {
    return cli.fail(c.status().message() + "; the cluster configuration is unchanged");
  }
  if (!file.empty()) {
    auto text = sys::readFile(file);
    Status s = text.ok() ? sys::makeDirs(cli.paths.etc) : text.status();
    if (s.ok()) {
      s = sys::writeFileAtomic(target, *text);
    }
    // A new cluster configuration comes with new cluster keys (reference 5.2); every node
    // needs the same ones, so they are copied with the configuration.
    if (s.ok()) {
      s = writeKeyFile(cli.paths.etc + "/keys", "cluster.key", "halo-cluster-key 1");
    }
    if (!s.ok()) {
      return cli.fail(s);
    }
  }
  std::cout << "Cluster configuration " << (file.empty() ? "checked" : "applied") << ": "
            << target << " (nodes " << join(c->nodeNames(), ", ") << ")\n";
  return kExitOk;
}

int clusterState(Cli& cli) {
  const std::string file = cli.paths.clusterXml();
  if (!sys::pathExists(file)) {
    std::cout << "No cluster configuration (" << file
              << "); apply one with halo cluster config FILE\n";
  } else {
    auto c = config::parseClusterConfigFile(file);
    if (!c.ok()) {
      return cli.fail(c.status());
    }
    std::cout << "Cluster configuration " << file << " (" << mtimeOf(file) << ", sha256 "
              << fileSha256(file).substr(0, 16) << ")\n";
    for (const auto& lan : c->lans) {
      std::cout << "  lan " << lan.name << ":";
      for (const auto& n : lan.nodes) {
        std::cout << " " << n.name << "=" << n.addr;
      }
      std::cout << "\n";
    }
  }
  auto db = NodeDb::open(cli.paths.nodeDb());
  std::cout << "Modules on this node:\n";
  for (const auto& m : cli.installedModules()) {
    auto entry = db.ok() ? db->findModule(m) : Result<std::optional<ModuleEntry>>(db.status());
    const std::string id =
        entry.ok() && entry->has_value() ? std::to_string((*entry)->id) : std::string("?");
    auto cfg = cli.installedConfig(m);
    const std::string active = cli.paths.activeConfDir(m) + "/userconfig.xml";
    std::cout << "  " << m << "  mode " << (cfg.ok() ? config::modeName(cfg->service.mode) : "?")
              << "  id " << id << "  config " << mtimeOf(active) << "  sha256 "
              << fileSha256(active).substr(0, 16) << "\n";
  }
  return kExitOk;
}

}  // namespace halo::cli
