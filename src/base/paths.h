#pragma once
// Paths: every file location derives from HALO_ROOT (DESIGN section 2), so that several nodes can
// run on one machine, each under its own root.

#include <string>

namespace halo {

struct Paths {
  std::string root;  // HALO_ROOT, "/" by default
  std::string etc;   // $HALO_ROOT/etc/halo: cluster.xml, modules/AM/{conf,bin}, keys/
  std::string var;   // $HALO_ROOT/var/lib/halo: node.db, modules/AM/ (logs, resources, state)
  std::string run;   // $HALO_ROOT/run/halo: sockets, pid files
  std::string log;   // $HALO_ROOT/var/log/halo

  // Reads HALO_ROOT from the environment (unset or empty means "/").
  static Paths fromEnvironment();
  static Paths fromRoot(const std::string& root);

  std::string clusterXml() const { return etc + "/cluster.xml"; }
  std::string daemonSocket() const { return run + "/halod.sock"; }
  std::string daemonPidFile() const { return run + "/halod.pid"; }
  std::string nodeDb() const { return var + "/node.db"; }
  // Installed module: what the operator edits ($ETC/modules/AM/conf/userconfig.xml, bin/*).
  std::string moduleDir(const std::string& m) const { return etc + "/modules/" + m; }
  std::string moduleConfDir(const std::string& m) const { return moduleDir(m) + "/conf"; }
  std::string moduleBinDir(const std::string& m) const { return moduleDir(m) + "/bin"; }
  std::string moduleUserConfig(const std::string& m) const {
    return moduleConfDir(m) + "/userconfig.xml";
  }
  // Module variable data (SAFEUSERVAR): log.db, resource.db, userlogs, active configuration.
  std::string moduleVarDir(const std::string& m) const { return var + "/modules/" + m; }
  std::string moduleLogDb(const std::string& m) const { return moduleVarDir(m) + "/log.db"; }
  std::string moduleResourceDb(const std::string& m) const {
    return moduleVarDir(m) + "/resource.db";
  }
  // The runtime's lifecycle state, rewritten atomically on every change (survives kill -9).
  std::string runtimeStateFile(const std::string& m) const {
    return moduleVarDir(m) + "/runtime.json";
  }
  // Active (applied) configuration, written by `halo config` (SAFEUSERCONF / SAFEUSERBIN).
  std::string activeDir(const std::string& m) const { return moduleVarDir(m) + "/active"; }
  std::string activeConfDir(const std::string& m) const { return activeDir(m) + "/conf"; }
  std::string activeBinDir(const std::string& m) const { return activeDir(m) + "/bin"; }
  std::string moduleSocket(const std::string& m) const { return run + "/modules/" + m + ".sock"; }
  std::string modulePidFile(const std::string& m) const { return run + "/modules/" + m + ".pid"; }
  // The module's replication process (halo-rfs): its control socket and pid file.
  std::string rfsSocket(const std::string& m) const { return run + "/modules/" + m + ".rfs.sock"; }
  std::string rfsPidFile(const std::string& m) const { return run + "/modules/" + m + ".rfs.pid"; }
};

}  // namespace halo
