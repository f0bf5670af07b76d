// halo module install | list | listid | getports | uninstall | package | genkey
#include <iostream>

#include "base/strings.h"
#include "cli/commands.h"
#include "cli/keys.h"
#include "module/node_db.h"
#include "module/ports.h"
#include "rfs/channel.h"
#include "sys/files.h"
#include "sys/zip_archive.h"

namespace halo::cli {

namespace {

Result<NodeDb> openNodeDb(const Cli& cli) {
  HALO_RETURN_IF_ERROR(sys::makeDirs(cli.paths.var));
  return NodeDb::open(cli.paths.nodeDb());
}

std::string baseName(const std::string& path) {
  std::string b = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  if (b.size() > 5 && b.compare(b.size() - 5, 5, ".safe") == 0) {
    b.resize(b.size() - 5);
  }
  return b;
}

}  // namespace

int moduleInstall(Cli& cli, const std::string& file, std::optional<int> id, bool replace) {
  const std::string name = cli.module.empty() ? baseName(file) : cli.module;
  if (!isValidModuleName(name)) {
    return cli.fail("invalid module name '" + name +
                    "': use a letter then letters, digits, '_' or '-' (at most 32); "
                    "name it with -m NAME");
  }
  if (!sys::pathExists(file)) {
    return cli.fail(file + ": no such file");
  }
  auto db = openNodeDb(cli);
  if (!db.ok()) {
    return cli.fail(db.status());
  }
  auto existing = db->findModule(name);
  if (!existing.ok()) {
    return cli.fail(existing.status());
  }
  const bool present = existing->has_value() || cli.installed(name);
  if (present && !replace) {
    return cli.fail("module '" + name + "' is already installed" +
                    (existing->has_value() ? " (id " + std::to_string((*existing)->id) + ")"
                                           : std::string()) +
                    "; uninstall it first or use -r to replace it");
  }
  if (present && cli.moduleStarted(name)) {
    return cli.fail("module '" + name + "' is running; stop it (halo stop -m " + name +
                    ") before replacing it");
  }
  auto tmp = sys::makeTempDir(cli.paths.var + "/tmp", "install-" + name);
  if (!tmp.ok()) {
    return cli.fail(tmp.status());
  }
  // Validate the whole package before touching anything installed.
  Status extracted = extractPackage(file, *tmp);
  if (!extracted.ok()) {
    (void)sys::removeTree(*tmp);
    return cli.fail(extracted.message() + "; nothing was installed");
  }
  auto assigned = db->assignModuleId(name, id, cli.time.systemTime(),
                                     present ? InstallMode::Replace : InstallMode::New);
  if (!assigned.ok()) {
    (void)sys::removeTree(*tmp);
    return cli.fail(assigned.status().message() + "; nothing was installed");
  }
  (void)sys::makeDirs(cli.paths.etc + "/modules");
  Status moved = sys::replaceDir(*tmp, cli.paths.moduleDir(name));
  if (!moved.ok()) {
    (void)sys::removeTree(*tmp);
    if (!present) {
      (void)db->removeModule(name);
    }
    return cli.fail(moved.message() + "; nothing was installed");
  }
  cli.moduleLog(name, 'U', "Module installed from " + file + " with id " +
                               std::to_string(*assigned));
  std::cout << "Module " << name << " installed with id " << *assigned << " in "
            << cli.paths.moduleDir(name) << "\nApply its configuration with: halo config -m "
            << name << "\n";
  return kExitOk;
}

int moduleList(Cli& cli, bool with_ids) {
  auto db = openNodeDb(cli);
  if (!db.ok()) {
    return cli.fail(db.status());
  }
  auto mods = db->modules();
  if (!mods.ok()) {
    return cli.fail(mods.status());
  }
  for (const auto& m : *mods) {
    if (with_ids) {
      std::cout << m.name << " " << m.id << "\n";
    } else {
      std::cout << m.name << "\n";
    }
  }
  return kExitOk;
}

int moduleGetports(Cli& cli) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto db = openNodeDb(cli);
  auto entry = db.ok() ? db->findModule(cli.module) : Result<std::optional<ModuleEntry>>(
                                                          db.status());
  if (!entry.ok() || !entry->has_value()) {
    return cli.fail("module '" + cli.module + "' has no id in " + cli.paths.nodeDb() +
                    "; reinstall it with halo module install -r");
  }
  const int id = (*entry)->id;
  const ModulePorts p = portsForModuleId(id);
  std::cout << "module " << cli.module << " id " << id << "\n"
            << "  node membership   UDP " << 4800 << "\n"
            << "  web service       TCP 9010 (HTTP), 9453 (HTTPS)\n"
            << "  heart (mirror)    UDP " << p.heart_udp << "\n"
            << "  rfs (mirror)      TCP " << p.rfs_tcp_first << "-" << p.rfs_tcp_last << "\n"
            << "  farm              UDP " << p.farm_udp << "\n";
  return kExitOk;
}

int moduleUninstall(Cli& cli) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  const std::string& m = cli.module;
  if (cli.moduleStarted(m)) {
    return cli.fail("module '" + m + "' is running; stop it first (halo stop -m " + m + ")");
  }
  if (sys::pathExists(cli.paths.activeDir(m))) {
    auto rc = cli.runScript(m, cli.paths.activeBinDir(m), cli.paths.activeConfDir(m),
                            "deconfig", {});
    if (rc && *rc != 0) {
      std::cerr << "halo: warning: deconfig script exited " << *rc << "; uninstalling anyway\n";
    }
  }
  auto db = openNodeDb(cli);
  if (db.ok()) {
    (void)db->removeModule(m);
  }
  Status a = sys::removeTree(cli.paths.moduleDir(m));
  Status b = sys::removeTree(cli.paths.moduleVarDir(m));
  if (!a.ok() || !b.ok()) {
    return cli.fail(!a.ok() ? a : b);
  }
  std::cout << "Module " << m << " uninstalled\n";
  return kExitOk;
}

int modulePackage(Cli& cli, const std::string& out) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  s = writePackage(cli.paths.moduleDir(cli.module), out);
  if (!s.ok()) {
    return cli.fail(s);
  }
  std::cout << "Module " << cli.module << " packaged into " << out << "\n";
  return kExitOk;
}

int moduleGenkey(Cli& cli) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  const std::string path = cli.paths.moduleConfDir(cli.module) + "/modulekey.dat";
  // The replication link's TLS identity shares the file, so operators still copy one file.
  auto tls = rfs::makeTlsIdentity("halo-module-" + cli.module);
  if (!tls.ok()) {
    return cli.fail(tls.status());
  }
  s = writeKeyFile(cli.paths.moduleConfDir(cli.module), "modulekey.dat", "halo-module-key 1",
                   tls->certificate_pem + tls->private_key_pem);
  if (!s.ok()) {
    return cli.fail(s);
  }
  cli.moduleLog(cli.module, 'U', "New module key and TLS identity generated");
  std::cout << "Module key and TLS identity written to " << path
            << "\nEvery node needs the same key: copy the module with halo module package, "
               "then apply it with halo config -m "
            << cli.module << "\n";
  return kExitOk;
}

}  // namespace halo::cli
