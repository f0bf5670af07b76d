#pragma once
// Daemon: halod's composition root. Serves the local API on $RUN/halod.sock, supervises module
// runtimes and starts boot-enabled modules once per boot.
//
// A "boot" is the first halod start since $RUN was emptied (it is a tmpfs on real servers; a
// fresh HALO_ROOT in tests): then modules whose boot setting is on are started and the state
// of the others is reset to STOP. A later halod restart adopts the runtimes that still run.

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "base/paths.h"
#include "daemon/supervisor.h"
#include "sys/event_loop.h"
#include "sys/unix_socket.h"

namespace halo::daemon {

class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> create(Paths paths, sys::EventLoop& loop);
  Status begin();

 private:
  Daemon(Paths paths, sys::EventLoop& loop, std::string runtime_exe);
  void onRequest(sys::LineServer::ConnId conn, const std::string& line);
  void logModule(const std::string& module, char level, const std::string& message);
  std::vector<std::string> installedModules() const;
  void bootStart();

  Paths paths_;
  sys::EventLoop& loop_;
  Supervisor supervisor_;
  std::set<std::string> boot_pending_;  // boot starts waiting for their boot_delay
  std::unique_ptr<sys::LineServer> server_;
};

// When `module` starts at boot: nullopt if it does not; else after <service boot_delay>.
// Whether it does: <service boot="on|off|auto">, or with boot="ignore" (the default) the
// persistent setting of `halo boot on|off` (resource usersetting.boot).
std::optional<Millis> bootDelay(const Paths& paths, const std::string& module, bool was_started);

}  // namespace halo::daemon
