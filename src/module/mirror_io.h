#pragma once
// MirrorIo: everything a mirror module's runtime does outside its pure machine — the heartbeat
// thread (Heart), the virtual IPs (VipManager), the split-brain witness, the persisted data
// generation — turning the machine's actions into effects and the world's events into machine
// inputs. The machine's answers go back through Hooks::execute, so the runtime executes every
// action in one place.
//
// Thread-safety: single-threaded, on the runtime's loop (Heart posts its events there).

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/paths.h"
#include "config/cluster_config.h"
#include "config/module_config.h"
#include "core/data_generation.h"
#include "module/checker_runner.h"
#include "module/engine.h"
#include "module/heart.h"
#include "module/module_log.h"
#include "module/resource_store.h"
#include "module/rfs_controller.h"
#include "module/vip_manager.h"
#include "sys/event_loop.h"

namespace halo::module {

// generation.json in the module's state folder: the record of DESIGN 5.4.
Result<core::DataGeneration> loadGeneration(const std::string& path);
Status saveGeneration(const std::string& path, const core::DataGeneration& g);

// Who this node is and who its peer is: the node of the heartbeat lan whose address (or laddr)
// is configured on this server.
struct MirrorPeers {
  std::string local;
  std::string peer;
};
Result<MirrorPeers> findMirrorPeers(const config::ClusterConfig& cluster,
                                    const config::ModuleConfig& module);

// Everything the runtime needs to build a MirrorEngine and its MirrorIo.
// Left while the replicated directories are written without interception (the primary's
// replication process died): its next start knows its change log missed writes.
inline std::string untrackedMarker(const Paths& paths, const std::string& module) {
  return paths.moduleVarDir(module) + "/rfs-untracked";
}

struct MirrorSetup {
  config::ClusterConfig cluster;
  MirrorPeers peers;
  int module_id = 0;
  std::optional<proto::ModuleKey> key;
  core::DataGeneration generation;
};
Result<MirrorSetup> prepareMirror(const Paths& paths, const std::string& module,
                                  const config::ModuleConfig& config);
// This node's and its peer's addresses on the replication lan (<rfs> flow, else the heartbeat
// with ident "flow", else the first heartbeat lan).
struct ReplicationAddresses {
  std::string local;
  std::string peer;
};
Result<ReplicationAddresses> replicationAddresses(const MirrorSetup& setup,
                                                  const config::ModuleConfig& config);

core::MirrorConfig mirrorMachineConfig(const config::ModuleConfig& config, const MirrorSetup& setup,
                                       bool failover_setting);

class MirrorIo {
 public:
  struct Hooks {
    std::function<void(Actions)> execute;
    std::function<void(LogLevel, const std::string& component, const std::string& message)> log;
  };
  static Result<std::unique_ptr<MirrorIo>> create(const Paths& paths, const std::string& module,
                                                  const config::ModuleConfig& config,
                                                  MirrorSetup setup, sys::EventLoop& loop,
                                                  ResourceStore& resources, MirrorEngine& engine,
                                                  Hooks hooks);
  ~MirrorIo();
  // Removes VIPs a crashed run left, then starts the heartbeats.
  Status begin(bool recovering);
  // Performs a mirror-only action; false when `action` is not one (the runtime handles it).
  bool perform(const core::MirrorAction& action);
  // The machine's state may have changed: the next heartbeats carry it.
  void stateChanged();
  // `halo failover on|off` (usersetting.failover) was changed.
  void refreshSettings();
  nlohmann::json describe() const;

 private:
  MirrorIo(Paths paths, std::string module, const config::ModuleConfig& config, MirrorSetup setup,
           sys::EventLoop& loop, ResourceStore& resources, MirrorEngine& engine, Hooks hooks);
  void onReceived(const std::string& ident, const proto::Heartbeat& hb);
  void onLink(const std::string& ident, bool up);
  void onAllLost();
  void scheduleRefresh();
  void setResource(const std::string& name, ResourceState state);
  proto::Heartbeat message();
  void feed(Actions actions) { hooks_.execute(engine_.track(std::move(actions))); }
  void log(LogLevel level, const std::string& message);

  // Replicated directories (mirror_rfs.cc): the replication process and what it reports.
  void rfsCreate();
  void rfsBegin(bool recovering);
  void rfsReplicate(const core::Replicate& r);
  void rfsStartResync(const core::StartResync& r);
  void rfsEvent(const nlohmann::json& e);
  void rfsStatus(const nlohmann::json& status);
  void rfsEnded(const std::string& role, const std::string& how);
  void rfsSecondaryEnded(const std::string& why);
  void rfsHeartbeat(const proto::Heartbeat& hb);
  void rfsPeerLost();
  void setFencePending(bool on);
  void rfsUptodate();
  // `halo prim|second fullsync` left a one-shot marker: consumed here.
  bool takeFullsync();
  // halo secondforce -d: the Unix time from which files are copied (one-shot marker).
  std::optional<int64_t> takeSecondforce();

  Paths paths_;
  std::string module_;
  const config::ModuleConfig& config_;
  MirrorSetup setup_;
  sys::EventLoop& loop_;
  ResourceStore& resources_;
  MirrorEngine& engine_;
  Hooks hooks_;
  std::unique_ptr<Heart> heart_;
  std::unique_ptr<VipManager> vip_;
  std::unique_ptr<PeriodicProbe> witness_;
  std::vector<proto::HeartbeatResource> remote_resources_;
  sys::EventLoop::Id refresh_timer_ = 0;
  sys::EventLoop::Id resync_timer_ = 0;

  std::unique_ptr<RfsController> rfs_;
  uint64_t resync_id_ = 0;      // the StartResync the secondary's process serves (0: none)
  bool resync_synced_ = false;  // ... and it reported its reintegration done
  int resync_failures_ = 0;     // in a row: the next attempt waits longer
  bool fence_pending_ = false;  // the primary's process waits for the peer to be outdated
  MonotonicTime fence_since_;
  sys::EventLoop::Id link_loss_timer_ = 0;
};

}  // namespace halo::module
