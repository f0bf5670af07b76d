#include "module/mirror_io.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>

#include "base/strings.h"
#include "config/validate.h"
#include "module/node_db.h"
#include "module/ports.h"
#include "proto/heartbeat_format.h"
#include "sys/files.h"
#include "sys/probes.h"

namespace halo::module {

namespace {

constexpr const char* kComponent = "heart";
// Resources carried in each heartbeat (reference: remote resources), within the packet budget.
constexpr size_t kMaxCarriedResources = 24;
constexpr size_t kMaxCarriedNameSize = 48;
// Witnesses answer within this or count as unreachable.
constexpr Millis kWitnessTimeout{1000};

std::string stripBrackets(const std::string& a) {
  if (a.size() > 2 && a.front() == '[' && a.back() == ']') {
    return a.substr(1, a.size() - 2);
  }
  return a;
}

// A literal address, or the first address a name resolves to.
Result<sys::IpAddr> resolve(const std::string& text) {
  const std::string a = stripBrackets(text);
  if (auto ip = sys::IpAddr::parse(a); ip.ok()) {
    return ip;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(a.c_str(), nullptr, &hints, &res); rc != 0) {
    return notFound("cannot resolve '" + a + "': " + gai_strerror(rc));
  }
  char buf[INET6_ADDRSTRLEN] = {};
  const void* src =
      res->ai_family == AF_INET
          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr)
          : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr);
  inet_ntop(res->ai_family, src, buf, sizeof buf);
  freeaddrinfo(res);
  return sys::IpAddr::parse(buf);
}

std::string nodeAddress(const config::ClusterNode& n, bool local) {
  return stripBrackets(local && !n.laddr.empty() ? n.laddr : n.addr);
}

core::DefaultPrim defaultPrim(const std::string& v) {
  if (v == "alone") {
    return core::DefaultPrim::Alone;
  }
  if (v == "lastprim") {
    return core::DefaultPrim::LastPrim;
  }
  return core::DefaultPrim::Node;
}

uint64_t randomId() {
  uint64_t v = 0;
  (void)proto::osRandomBytes({reinterpret_cast<uint8_t*>(&v), sizeof v});
  return v;
}

}  // namespace

Result<core::DataGeneration> loadGeneration(const std::string& path) {
  if (!sys::pathExists(path)) {
    return core::DataGeneration{};
  }
  HALO_ASSIGN_OR_RETURN(std::string text, sys::readFile(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return failedPrecondition(path +
                              ": not a generation record; move it away to start from an empty "
                              "record (this node then counts as not up to date)");
  }
  core::DataGeneration g;
  g.current = j.value("current", uint64_t{0});
  g.parent = j.value("parent", uint64_t{0});
  g.uptodate = j.value("uptodate", false);
  g.clean_stop = j.value("clean_stop", true);
  g.resync_interrupted = j.value("resync_interrupted", false);
  g.last_primary = j.value("last_primary", false);
  g.alone = j.value("alone", false);
  g.role_epoch = j.value("role_epoch", uint64_t{0});
  return g;
}

Status saveGeneration(const std::string& path, const core::DataGeneration& g) {
  nlohmann::json j = {{"current", g.current},
                      {"parent", g.parent},
                      {"uptodate", g.uptodate},
                      {"clean_stop", g.clean_stop},
                      {"resync_interrupted", g.resync_interrupted},
                      {"last_primary", g.last_primary},
                      {"alone", g.alone},
                      {"role_epoch", g.role_epoch}};
  return sys::writeFileAtomic(path, j.dump() + "\n");
}

Result<MirrorPeers> findMirrorPeers(const config::ClusterConfig& cluster,
                                    const config::ModuleConfig& module) {
  const config::ClusterLan* lan = cluster.findLan(module.heart->heartbeats.front().name);
  if (lan == nullptr || lan->nodes.size() != 2) {
    return failedPrecondition("the heartbeat lan of a mirror module needs exactly 2 nodes");
  }
  HALO_ASSIGN_OR_RETURN(auto addrs, sys::listAddresses());
  std::vector<std::string> local;
  std::string listed;
  for (const auto& n : lan->nodes) {
    listed += (listed.empty() ? "" : ", ") + n.name + " " + nodeAddress(n, true);
    auto ip = resolve(nodeAddress(n, true));
    if (!ip.ok()) {
      continue;
    }
    if (std::any_of(addrs.begin(), addrs.end(),
                    [&](const sys::AddrEntry& e) { return e.address == *ip; })) {
      local.push_back(n.name);
    }
  }
  if (local.size() != 1) {
    return failedPrecondition(
        std::string(local.empty() ? "none" : "both") + " of the nodes of lan '" + lan->name +
        "' in cluster.xml (" + listed + ") " + (local.empty() ? "has" : "have") +
        " an address on this server: fix cluster.xml (halo cluster config) or this server's "
        "addresses");
  }
  MirrorPeers p;
  p.local = local.front();
  p.peer = lan->nodes[0].name == p.local ? lan->nodes[1].name : lan->nodes[0].name;
  return p;
}

Result<MirrorSetup> prepareMirror(const Paths& paths, const std::string& module,
                                  const config::ModuleConfig& config) {
  MirrorSetup s;
  if (!sys::pathExists(paths.clusterXml())) {
    return failedPrecondition(
        "a mirror module needs the cluster configuration: write "
        "cluster.xml and run halo cluster config FILE on both nodes");
  }
  HALO_ASSIGN_OR_RETURN(s.cluster, config::parseClusterConfigFile(paths.clusterXml()));
  HALO_RETURN_IF_ERROR(config::validateAgainstCluster(config, s.cluster));
  HALO_ASSIGN_OR_RETURN(s.peers, findMirrorPeers(s.cluster, config));
  HALO_ASSIGN_OR_RETURN(NodeDb db, NodeDb::open(paths.nodeDb()));
  HALO_ASSIGN_OR_RETURN(auto entry, db.findModule(module));
  if (!entry) {
    return failedPrecondition("module '" + module + "' is not installed");
  }
  s.module_id = entry->id;
  const std::string key_path = paths.moduleConfDir(module) + "/modulekey.dat";
  if (sys::pathExists(key_path)) {
    HALO_ASSIGN_OR_RETURN(std::string text, sys::readFile(key_path));
    auto key = proto::parseModuleKey(text);
    if (!key.ok()) {
      return failedPrecondition(key_path + ": " + key.status().message() +
                                "; run halo module genkey -m " + module +
                                " and copy the file to the other node");
    }
    s.key = *key;
  }
  HALO_ASSIGN_OR_RETURN(s.generation,
                        loadGeneration(paths.moduleVarDir(module) + "/generation.json"));
  return s;
}

Result<ReplicationAddresses> replicationAddresses(const MirrorSetup& setup,
                                                  const config::ModuleConfig& config) {
  const std::string lan_name = config.flowLan();
  const config::ClusterLan* lan = setup.cluster.findLan(lan_name);
  const config::ClusterNode* me = lan ? lan->findNode(setup.peers.local) : nullptr;
  const config::ClusterNode* peer = lan ? lan->findNode(setup.peers.peer) : nullptr;
  if (me == nullptr || peer == nullptr) {
    return failedPrecondition("the replication lan '" + lan_name + "' does not list both " +
                              setup.peers.local + " and " + setup.peers.peer + " in cluster.xml");
  }
  HALO_ASSIGN_OR_RETURN(sys::IpAddr mine, resolve(nodeAddress(*me, true)));
  HALO_ASSIGN_OR_RETURN(sys::IpAddr theirs, resolve(nodeAddress(*peer, false)));
  return ReplicationAddresses{mine.toString(), theirs.toString()};
}

core::MirrorConfig mirrorMachineConfig(const config::ModuleConfig& config, const MirrorSetup& setup,
                                       bool failover_setting) {
  core::MirrorConfig c;
  c.local_node = setup.peers.local;
  c.peer_node = setup.peers.peer;
  c.failover = failover_setting;
  c.default_prim = defaultPrim(config.service.defaultprim);
  if (c.default_prim == core::DefaultPrim::Node) {
    c.default_prim_node = config.service.defaultprim;
  }
  c.witness = config.check && config.check->splitbrain.has_value();
  c.gated = true;
  c.replicated = config.rfs.has_value();
  c.random = randomId;
  return c;
}

Result<std::unique_ptr<MirrorIo>> MirrorIo::create(const Paths& paths, const std::string& module,
                                                   const config::ModuleConfig& config,
                                                   MirrorSetup setup, sys::EventLoop& loop,
                                                   ResourceStore& resources, MirrorEngine& engine,
                                                   Hooks hooks) {
  std::unique_ptr<MirrorIo> io(new MirrorIo(paths, module, config, std::move(setup), loop,
                                            resources, engine, std::move(hooks)));
  if (config.vip) {
    HALO_ASSIGN_OR_RETURN(
        io->vip_, VipManager::create(*config.vip, paths.run + "/modules/" + module + ".vip.json",
                                     loop, [raw = io.get()](bool error, const std::string& m) {
                                       raw->log(error ? LogLevel::Error : LogLevel::Info, m);
                                     }));
  }
  if (config.rfs) {
    io->rfsCreate();
  }
  if (config.check && config.check->splitbrain) {
    const auto& sb = *config.check->splitbrain;
    std::vector<std::string> witnesses;
    for (const auto& w : splitTrimmed(sb.arg, " \t,")) {
      if (!w.empty()) {
        witnesses.push_back(w);
      }
    }
    MirrorIo* raw = io.get();
    io->witness_ = std::make_unique<PeriodicProbe>(
        loop, std::chrono::hours(24),
        [witnesses] {
          sys::ProbeOutcome any{false, "no witness answered"};
          for (const auto& w : witnesses) {
            auto o = sys::probePing(w, kWitnessTimeout);
            if (o.up) {
              return sys::ProbeOutcome{true, "witness " + w + " answered"};
            }
          }
          return any;
        },
        [raw, ident = sb.ident](const sys::ProbeOutcome& o) {
          raw->witness_->setActive(false);
          raw->log(LogLevel::Info, "Split brain witness: " + o.detail);
          raw->setResource("splitbrain." + ident, o.up ? ResourceState::Up : ResourceState::Down);
          raw->feed(raw->engine_.machine().witnessResult(o.up));
        });
  }
  return io;
}

MirrorIo::MirrorIo(Paths paths, std::string module, const config::ModuleConfig& config,
                   MirrorSetup setup, sys::EventLoop& loop, ResourceStore& resources,
                   MirrorEngine& engine, Hooks hooks)
    : paths_(std::move(paths)),
      module_(std::move(module)),
      config_(config),
      setup_(std::move(setup)),
      loop_(loop),
      resources_(resources),
      engine_(engine),
      hooks_(std::move(hooks)) {}

MirrorIo::~MirrorIo() {
  loop_.cancelTimer(refresh_timer_);
  loop_.cancelTimer(resync_timer_);
  loop_.cancelTimer(link_loss_timer_);
}

void MirrorIo::log(LogLevel level, const std::string& message) {
  hooks_.log(level, kComponent, message);
}

void MirrorIo::setResource(const std::string& name, ResourceState state) {
  (void)resources_.set(name, state, kComponent, loop_.time().systemTime());
}

Status MirrorIo::begin(bool recovering) {
  if (vip_ && !recovering) {
    HALO_RETURN_IF_ERROR(vip_->cleanupLeftovers());
  }
  if (rfs_) {
    rfsBegin(recovering);
  }
  const auto& heart = *config_.heart;
  HeartOptions o;
  o.module_id = static_cast<uint16_t>(setup_.module_id);
  o.peer_node = setup_.peers.peer;
  o.key = setup_.key;
  const int port = heart.port.value_or(portsForModuleId(setup_.module_id).heart_udp);
  for (const auto& hb : heart.heartbeats) {
    const config::ClusterLan* lan = setup_.cluster.findLan(hb.name);
    const config::ClusterNode* me = lan ? lan->findNode(setup_.peers.local) : nullptr;
    const config::ClusterNode* peer = lan ? lan->findNode(setup_.peers.peer) : nullptr;
    if (me == nullptr || peer == nullptr) {
      return failedPrecondition("heartbeat lan '" + hb.name + "' does not list both " +
                                setup_.peers.local + " and " + setup_.peers.peer);
    }
    HALO_ASSIGN_OR_RETURN(sys::IpAddr mine, resolve(nodeAddress(*me, true)));
    HALO_ASSIGN_OR_RETURN(sys::IpAddr theirs, resolve(nodeAddress(*peer, false)));
    o.links.push_back(
        HeartLink{hb.ident, mine.toString(), theirs.toString(), port, hb.pulse, hb.timeout});
    setResource("heartbeat." + hb.ident, ResourceState::Init);
  }
  Heart::Events ev;
  ev.received = [this](const std::string& ident, const proto::Heartbeat& hb) {
    onReceived(ident, hb);
  };
  ev.link = [this](const std::string& ident, bool up) { onLink(ident, up); };
  ev.all_lost = [this] { onAllLost(); };
  ev.warning = [this](const std::string& m) { log(LogLevel::Error, m); };
  HALO_ASSIGN_OR_RETURN(
      heart_, Heart::start(std::move(o), loop_, loop_.time(), std::move(ev), proto::osRandomBytes));
  heart_->setMessage(message());
  // Resources change without a state change (checkers): the peer sees them within a second.
  scheduleRefresh();
  return okStatus();
}

void MirrorIo::scheduleRefresh() {
  refresh_timer_ = loop_.addTimer(std::chrono::seconds(1), [this] {
    refresh_timer_ = 0;
    heart_->setMessage(message());
    scheduleRefresh();
  });
}

proto::Heartbeat MirrorIo::message() {
  const core::MirrorHeartbeat m = engine_.machine().heartbeat();
  proto::Heartbeat hb;
  hb.module_name = module_.substr(0, proto::kMaxModuleNameSize);
  hb.node_name = m.node;
  hb.main_state = m.state.main;
  hb.readiness = m.state.readiness;
  hb.role_epoch = m.generation.role_epoch;
  hb.generation = m.generation.current;
  hb.parent_generation = m.generation.parent;
  hb.uptodate = m.generation.uptodate;
  hb.clean_stop = m.generation.clean_stop;
  hb.resync_interrupted = m.generation.resync_interrupted;
  hb.alone = m.generation.alone;
  hb.last_primary = m.generation.last_primary;
  hb.handover = m.handover;
  hb.failover_on = config_.service.failover;
  auto list = resources_.list();
  if (list.ok()) {
    for (const auto& r : *list) {
      if (hb.resources.size() >= kMaxCarriedResources) {
        break;
      }
      if (r.name.rfind("remote.", 0) == 0 || r.name.size() > kMaxCarriedNameSize) {
        continue;
      }
      hb.resources.push_back({r.name, r.state});
    }
  }
  return hb;
}

void MirrorIo::onReceived(const std::string& /*ident*/, const proto::Heartbeat& hb) {
  core::MirrorHeartbeat m;
  m.node = hb.node_name;
  m.state = {hb.main_state, hb.readiness};
  m.generation.current = hb.generation;
  m.generation.parent = hb.parent_generation;
  m.generation.uptodate = hb.uptodate;
  m.generation.clean_stop = hb.clean_stop;
  m.generation.resync_interrupted = hb.resync_interrupted;
  m.generation.last_primary = hb.last_primary;
  m.generation.alone = hb.alone;
  m.generation.role_epoch = hb.role_epoch;
  m.handover = hb.handover;
  const auto now = loop_.time().systemTime();
  (void)resources_.setValue("state.remote", m.state.describe(), kComponent, now);
  for (const auto& r : hb.resources) {
    auto old = std::find_if(remote_resources_.begin(), remote_resources_.end(),
                            [&](const auto& x) { return x.name == r.name; });
    if (old == remote_resources_.end() || old->state != r.state) {
      (void)resources_.set("remote." + r.name, r.state, kComponent, now);
    }
  }
  remote_resources_ = hb.resources;
  if (config_.check && config_.check->splitbrain) {
    // The witness is only asked while the peer is unreachable; its verdict ends with that.
    setResource("splitbrain." + config_.check->splitbrain->ident, ResourceState::Init);
  }
  feed(engine_.machine().heartbeatReceived(m));
  if (rfs_) {
    rfsHeartbeat(hb);
  }
}

void MirrorIo::onLink(const std::string& ident, bool up) {
  log(up ? LogLevel::Info : LogLevel::Error,
      "Resource heartbeat." + ident + " set to " + (up ? "up" : "down") + " by heart");
  setResource("heartbeat." + ident, up ? ResourceState::Up : ResourceState::Down);
}

void MirrorIo::onAllLost() {
  (void)resources_.setValue("state.remote", "UNKNOWN (Unknown)", kComponent,
                            loop_.time().systemTime());
  if (rfs_) {
    rfsPeerLost();
  }
  feed(engine_.machine().heartbeatsLost());
}

bool MirrorIo::perform(const core::MirrorAction& action) {
  if (std::holds_alternative<core::AddVip>(action)) {
    if (vip_) {
      (void)vip_->add();  // failures are logged; the ip checker decides what follows
    }
  } else if (std::holds_alternative<core::RemoveVip>(action)) {
    if (vip_) {
      (void)vip_->remove();
    }
  } else if (auto* p = std::get_if<core::PersistGeneration>(&action)) {
    Status s = saveGeneration(paths_.moduleVarDir(module_) + "/generation.json", p->record);
    if (!s.ok()) {
      log(LogLevel::Critical, "Cannot persist the data generation: " + s.message());
    }
    if (rfs_) {
      rfsUptodate();
    }
  } else if (std::holds_alternative<core::SendHeartbeatNow>(action)) {
    if (heart_) {
      heart_->setMessage(message());
      heart_->sendNow();
    }
  } else if (std::holds_alternative<core::AskWitness>(action)) {
    if (witness_) {
      log(LogLevel::Info, "All heartbeats lost: asking the split brain witness");
      witness_->setActive(true);
    } else {
      feed(engine_.machine().witnessResult(true));
    }
  } else if (auto* rep = std::get_if<core::Replicate>(&action)) {
    rfsReplicate(*rep);
  } else if (auto* rs = std::get_if<core::StartResync>(&action); rs != nullptr && rfs_) {
    rfsStartResync(*rs);
  } else if (auto* r = std::get_if<core::StartResync>(&action)) {
    // No replicated directory: the secondary holds everything it needs once it joined.
    const uint64_t id = r->id;
    loop_.cancelTimer(resync_timer_);
    resync_timer_ = loop_.addTimer(Millis(0), [this, id] {
      resync_timer_ = 0;
      feed(engine_.machine().resyncDone(id, true));
    });
  } else {
    return false;
  }
  return true;
}

void MirrorIo::stateChanged() {
  if (heart_) {
    heart_->setMessage(message());
  }
}

void MirrorIo::refreshSettings() {
  auto r = resources_.get("usersetting.failover");
  const bool on = !(r.ok() && r->has_value() && (*r)->state == ResourceState::Down);
  engine_.machine().setFailover(on);
}

nlohmann::json MirrorIo::describe() const {
  const auto& m = engine_.machine();
  const auto& g = m.generation();
  nlohmann::json j = {{"local_node", setup_.peers.local},
                      {"peer_node", setup_.peers.peer},
                      {"peer_alive", m.peerAlive()},
                      {"generation",
                       {{"current", g.current},
                        {"parent", g.parent},
                        {"uptodate", g.uptodate},
                        {"clean_stop", g.clean_stop},
                        {"resync_interrupted", g.resync_interrupted},
                        {"alone", g.alone},
                        {"last_primary", g.last_primary},
                        {"role_epoch", g.role_epoch}}}};
  if (m.peer()) {
    j["peer_state"] = m.peer()->state.describe();
  }
  nlohmann::json links = nlohmann::json::array();
  if (heart_) {
    for (const auto& s : heart_->stats()) {
      links.push_back({{"ident", s.ident},
                       {"up", s.up},
                       {"sent", s.sent},
                       {"accepted", s.packets.accepted},
                       {"forged", s.packets.forged},
                       {"replayed", s.packets.replayed},
                       {"truncated", s.packets.truncated},
                       {"bad_magic", s.packets.bad_magic},
                       {"foreign_module", s.packets.foreign_module},
                       {"key_mismatch", s.packets.key_mismatch},
                       {"malformed", s.packets.malformed},
                       {"wrong_source", s.wrong_source},
                       {"wrong_node", s.wrong_node},
                       {"send_errors", s.send_errors}});
    }
  }
  j["heartbeats"] = links;
  if (vip_) {
    j["vip"] = vip_->describe();
  }
  if (rfs_) {
    nlohmann::json r = rfs_->running() ? rfs_->lastStatus() : nlohmann::json::object();
    r["process"] = rfs_->running() ? rfs_->role() : "stopped";
    j["rfs"] = r;
  }
  return j;
}

}  // namespace halo::module
