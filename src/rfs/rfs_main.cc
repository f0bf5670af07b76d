// halo-rfs: the replication process of one mirror module on one node (DESIGN 2, 6). Separate from
// the module runtime so that a runtime restart never breaks the application's I/O. The runtime
// starts it for a role and stops it (SIGTERM) when the role ends:
//
//   halo-rfs primary   -m MODULE [--full]  FUSE over every replicated directory, listens for
//                                          the secondary and reintegrates it
//   halo-rfs secondary -m MODULE [--full] [--compare] [--quarantine] [--since UNIX_S]
//                                          applies what the primary sends
//
// --full (halo prim|second fullsync): the next reintegration sends every file whole.
// --compare: the data generations are unrelated: every file is compared, whatever the journal
// ($VAR/modules/MODULE/rfs.db: sync point and change log) says.
// --quarantine: a split brain made this node secondary: what it changed alone is copied to
// $VAR/modules/MODULE/splitbrain/<date>/ first.
// --since UNIX_S (halo secondforce -d): only files modified since then are copied.
//
// The configuration is the module's active one (with the environment's macros, like the runtime
// that started it), cluster.xml and the module key under HALO_ROOT. fd 3, when open, gets "OK\n"
// once the role is in place or "ERR <message>\n". The control socket $RUN/modules/MODULE.rfs.sock
// answers the local API's requests (docs/replication.md): status, events (long poll), unfence,
// verify. Exit codes: 0 stopped, 1 could not start, 3 the secondary's link ended.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "config/macros.h"
#include "config/module_config.h"
#include "module/mirror_io.h"
#include "module/ports.h"
#include "proto/api.h"
#include "rfs/filter.h"
#include "rfs/service.h"
#include "sys/event_loop.h"
#include "sys/files.h"
#include "sys/process.h"
#include "sys/unix_socket.h"

namespace {

using halo::Millis;
using halo::Result;
using halo::Status;
using halo::rfs::ServiceEvent;
using halo::rfs::ServiceOptions;

constexpr size_t kKeptEvents = 1000;
constexpr int64_t kMaxEventWaitMs = 10000;
constexpr Millis kLingerAfterLoss{1500};  // the runtime's long poll picks up the last events

int usage() {
  fprintf(stderr,
          "usage: halo-rfs primary -m MODULE [--full]\n"
          "       halo-rfs secondary -m MODULE [--full] [--compare] [--quarantine] "
          "[--since UNIX_S]\n"
          "The replication process of a mirror module; its runtime starts it.\n");
  return 2;
}

// The module's configuration, turned into what a service needs.
Result<ServiceOptions> loadOptions(const halo::Paths& paths, const std::string& module, bool full,
                                   bool compare) {
  const std::string conf = paths.activeConfDir(module) + "/userconfig.xml";
  HALO_ASSIGN_OR_RETURN(
      auto cfg, halo::config::parseModuleConfigFile(conf, halo::config::processEnvironment()));
  if (!cfg.rfs) {
    return halo::failedPrecondition("module '" + module + "' has no <rfs>: nothing to replicate");
  }
  HALO_ASSIGN_OR_RETURN(auto setup, halo::module::prepareMirror(paths, module, cfg));
  HALO_ASSIGN_OR_RETURN(auto addrs, halo::module::replicationAddresses(setup, cfg));
  const auto& rfs = *cfg.rfs;
  ServiceOptions o;
  for (const auto& r : rfs.replicated) {
    halo::rfs::ReplicatedDir d;
    d.dir = r.dir;
    d.read_only = r.read_only;
    for (const auto& t : r.tocheck) {
      d.tocheck.push_back(t.path);
    }
    HALO_ASSIGN_OR_RETURN(auto filter, halo::rfs::ReplicationFilter::create(r));
    if (!filter->excludesNothing()) {
      std::shared_ptr<halo::rfs::ReplicationFilter> shared(std::move(filter));
      d.replicated = [shared](std::string_view p, bool dir) { return shared->replicated(p, dir); };
    }
    o.dirs.push_back(std::move(d));
  }
  o.link.module_id = static_cast<uint16_t>(setup.module_id);
  o.link.send_timeout = rfs.sendtimeout;
  // The fence must outlast the secondary's own decision that it is outdated (its heartbeat
  // timeout and a margin), or it would lift before it means anything.
  halo::Millis heartbeat_timeout{0};
  for (const auto& hb : cfg.heart->heartbeats) {
    heartbeat_timeout = std::max(heartbeat_timeout, hb.timeout);
  }
  o.lock_timeout = std::max(rfs.locktimeout, heartbeat_timeout + halo::Millis(2000));
  o.local_addr = addrs.local;
  o.pair = setup.peers.local + "/" + setup.peers.peer;
  o.peer_addr = addrs.peer;
  o.port = halo::portsForModuleId(setup.module_id).rfs_tcp_first;
  o.resync.threads = static_cast<unsigned>(rfs.nbrei);
  o.resync.bandwidth_kib_per_s = static_cast<uint64_t>(rfs.reiallowedbw);
  o.sync_on_fsync = rfs.async == halo::config::RfsAsync::None;
  o.connections = static_cast<unsigned>(rfs.nbremconn);
  o.full = full;
  o.compare = compare;
  o.journal = paths.moduleVarDir(module) + "/rfs.db";
  o.activity_log = paths.moduleVarDir(module) + "/rfs-al.db";
  o.untracked_marker = halo::module::untrackedMarker(paths, module);
  o.zone_size = static_cast<uint64_t>(rfs.ruzone_blocksize);
  o.random = [] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) | rd();
  };
  const std::string key_path = paths.moduleConfDir(module) + "/modulekey.dat";
  if (halo::sys::pathExists(key_path)) {
    HALO_ASSIGN_OR_RETURN(std::string text, halo::sys::readFile(key_path));
    HALO_ASSIGN_OR_RETURN(auto tls, halo::rfs::parseModuleTls(text));
    if (!tls) {
      return halo::failedPrecondition(
          key_path + " holds no TLS identity for the replication link: run halo module genkey -m " +
          module + " again and copy the file to the other node");
    }
    o.link.tls = std::move(*tls);
  }
  return o;
}

// A fault point for crash tests ($VAR/modules/MODULE/rfs-fault holding "journal-commit N"):
// inside its Nth journal write, before the commit, the process writes rfs-fault-hit beside it
// and stops there for good, so that a test can crash the whole node at that very point. Absent
// file: no fault.
std::function<void()> journalFault(const halo::Paths& paths, const std::string& module) {
  const std::string dir = paths.moduleVarDir(module);
  auto text = halo::sys::readFile(dir + "/rfs-fault");
  int n = 0;
  if (!text.ok() || std::sscanf(text->c_str(), "journal-commit %d", &n) != 1 || n <= 0) {
    return nullptr;
  }
  auto left = std::make_shared<std::atomic<int>>(n);
  return [left, dir] {
    if (--*left != 0) {
      return;
    }
    (void)halo::sys::writeFileAtomic(dir + "/rfs-fault-hit", "journal-commit\n");
    while (true) {
      ::pause();  // until the test kills the node
    }
  };
}

// The events the runtime has not collected yet, and the control socket's long polls.
class Control {
 public:
  Control(halo::sys::EventLoop& loop) : loop_(loop) {}

  void add(const ServiceEvent& e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      nlohmann::json j = {{"seq", ++last_},
                          {"kind", e.kind},
                          {"message", e.message},
                          {"level", std::string(1, e.level)}};
      events_.push_back(std::move(j));
      if (events_.size() > kKeptEvents) {
        events_.pop_front();
      }
    }
    loop_.post([this] { answerWaiters(false); });
  }

  void setServer(halo::sys::LineServer* server) { server_ = server; }
  void setStatus(std::function<nlohmann::json()> status) { status_ = std::move(status); }

  // {"after": N, "wait_ms": T}: the events after N, as soon as there are any (or after T).
  void poll(halo::sys::LineServer::ConnId conn, const nlohmann::json& params) {
    Waiter w{conn, params.value("after", uint64_t{0}), 0};
    const int64_t wait = std::min(params.value("wait_ms", int64_t{0}), kMaxEventWaitMs);
    if (wait > 0 && !hasAfter(w.after)) {
      w.timer = loop_.addTimer(Millis(wait), [this, conn] { answer(conn, true); });
      waiters_.push_back(w);
      return;
    }
    waiters_.push_back(w);
    answer(conn, true);
  }

 private:
  struct Waiter {
    halo::sys::LineServer::ConnId conn;
    uint64_t after;
    halo::sys::EventLoop::Id timer;
  };

  bool hasAfter(uint64_t after) {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_ > after;
  }

  void answerWaiters(bool force) {
    std::vector<halo::sys::LineServer::ConnId> ready;
    for (const auto& w : waiters_) {
      if (force || hasAfter(w.after)) {
        ready.push_back(w.conn);
      }
    }
    for (auto c : ready) {
      answer(c, true);
    }
  }

  void answer(halo::sys::LineServer::ConnId conn, bool /*always*/) {
    auto it = std::find_if(waiters_.begin(), waiters_.end(),
                           [&](const Waiter& w) { return w.conn == conn; });
    if (it == waiters_.end()) {
      return;
    }
    const Waiter w = *it;
    waiters_.erase(it);
    if (w.timer != 0) {
      loop_.cancelTimer(w.timer);
    }
    nlohmann::json list = nlohmann::json::array();
    uint64_t last = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& e : events_) {
        if (e["seq"].get<uint64_t>() > w.after) {
          list.push_back(e);
        }
      }
      last = last_;
    }
    nlohmann::json data = {{"events", list}, {"last", last}};
    if (status_) {
      data["status"] = status_();
    }
    server_->reply(conn, halo::proto::encodeReply(halo::proto::okReply("", data)));
  }

  halo::sys::EventLoop& loop_;
  halo::sys::LineServer* server_ = nullptr;
  std::function<nlohmann::json()> status_;
  std::mutex mutex_;
  std::deque<nlohmann::json> events_;  // guarded by mutex_
  uint64_t last_ = 0;                  // guarded by mutex_
  std::vector<Waiter> waiters_;        // loop thread only
};

}  // namespace

int main(int argc, char** argv) {
  halo::rfs::tuneAllocatorForRecords();
  if (argc < 2) {
    return usage();
  }
  const std::string role = argv[1];
  std::string module;
  bool full = false;
  bool compare = false;
  bool quarantine = false;
  int64_t since = 0;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
      module = argv[++i];
    } else if (std::strcmp(argv[i], "--full") == 0) {
      full = true;
    } else if (std::strcmp(argv[i], "--compare") == 0) {
      compare = true;
    } else if (std::strcmp(argv[i], "--quarantine") == 0) {
      quarantine = true;
    } else if (std::strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
      since = std::atoll(argv[++i]);
    } else {
      return usage();
    }
  }
  if ((role != "primary" && role != "secondary") || module.empty()) {
    return usage();
  }
  signal(SIGPIPE, SIG_IGN);
  const halo::Paths paths = halo::Paths::fromEnvironment();
  halo::RealTimeSource time;
  auto loop = halo::sys::EventLoop::create(time);
  if (!loop.ok()) {
    halo::sys::reportReadiness("ERR " + loop.status().message());
    return 1;
  }
  int exit_code = 0;
  // Before any thread exists, so that every thread has the termination signals blocked.
  Status sig = (*loop)->watchSignals({SIGTERM, SIGINT}, [&](int) { (*loop)->exit(); });
  if (!sig.ok()) {
    halo::sys::reportReadiness("ERR " + sig.message());
    return 1;
  }
  auto options = loadOptions(paths, module, full, compare);
  if (options.ok()) {
    options->journal_fault = journalFault(paths, module);
    options->quarantine = quarantine;
    options->modified_after = since;
    options->quarantine_dir = paths.moduleVarDir(module) + "/splitbrain";
  }
  if (!options.ok()) {
    halo::sys::reportReadiness("ERR " + options.status().message());
    return 1;
  }
  Control control(**loop);
  auto sink = [&](const ServiceEvent& e) {
    control.add(e);
    if (role == "secondary" && (e.kind == "lost" || e.kind == "closed")) {
      // The session is over: give the runtime a moment to collect the events, then end.
      const bool planned = e.kind == "closed";
      (*loop)->post([&, planned] {
        exit_code = planned ? 0 : 3;
        (*loop)->addTimer(kLingerAfterLoss, [&] { (*loop)->exit(); });
      });
    }
  };
  std::unique_ptr<halo::rfs::PrimaryService> primary;
  std::unique_ptr<halo::rfs::SecondaryService> secondary;
  const ServiceOptions opts = *options;
  if (role == "primary") {
    auto p = halo::rfs::PrimaryService::start(opts, time, sink);
    if (!p.ok()) {
      halo::sys::reportReadiness("ERR " + p.status().message());
      return 1;
    }
    primary = std::move(*p);
    control.setStatus([&] { return primary->status(); });
  } else {
    auto s = halo::rfs::SecondaryService::start(opts, time, sink);
    if (!s.ok()) {
      halo::sys::reportReadiness("ERR " + s.status().message());
      return 1;
    }
    secondary = std::move(*s);
    control.setStatus([&] { return secondary->status(); });
  }
  std::vector<std::thread> verifiers;
  std::unique_ptr<halo::sys::LineServer> server;
  auto handle = [&](halo::sys::LineServer::ConnId conn, const std::string& line) {
    auto req = halo::proto::decodeRequest(line);
    if (!req.ok()) {
      server->reply(conn, halo::proto::encodeReply(halo::proto::errorReply(
                              "malformed request: " + req.status().message(), 2)));
      return;
    }
    if (req->cmd == "events") {
      control.poll(conn, req->params);
    } else if (req->cmd == "status") {
      server->reply(conn, halo::proto::encodeReply(halo::proto::okReply(
                              "", primary ? primary->status() : secondary->status())));
    } else if (req->cmd == "diff") {
      if (!primary) {
        server->reply(conn, halo::proto::encodeReply(halo::proto::errorReply(
                                "rfsdiff runs on the primary (PRIM or ALONE): this node is the "
                                "secondary")));
        return;
      }
      // A metadata walk of what changed (or of everything): on its own thread.
      verifiers.emplace_back([&, conn] {
        const std::string encoded =
            halo::proto::encodeReply(halo::proto::okReply("", primary->estimate()));
        (*loop)->post([&, conn, encoded] { server->reply(conn, encoded); });
      });
    } else if (req->cmd == "peer_lost") {
      if (primary) {
        primary->peerLost();
      }
      server->reply(conn, halo::proto::encodeReply(halo::proto::okReply()));
    } else if (req->cmd == "unfence") {
      if (primary) {
        primary->unfence();
      }
      server->reply(conn, halo::proto::encodeReply(halo::proto::okReply()));
    } else if (req->cmd == "verify") {
      // Walks both trees: on its own thread, the answer comes when it is done.
      std::vector<int> roots = primary ? primary->rootFds() : secondary->rootFds();
      verifiers.emplace_back([&, conn, roots] {
        auto r = halo::rfs::verifyWithPeer(roots, opts.dirs, opts.local_addr, opts.peer_addr,
                                           opts.port, opts.link);
        nlohmann::json data;
        halo::proto::Reply reply;
        if (!r.ok()) {
          reply = halo::proto::errorReply("rfsverify: " + r.status().message());
        } else {
          nlohmann::json diffs = nlohmann::json::array();
          for (const auto& [root, d] : r->differences) {
            diffs.push_back({{"dir", opts.dirs[root].dir}, {"line", describeDiff(d)}});
          }
          reply = halo::proto::okReply(
              "",
              {{"differences", diffs}, {"entries", r->entries}, {"bytes_hashed", r->bytes_hashed}});
        }
        const std::string encoded = halo::proto::encodeReply(reply);
        (*loop)->post([&, conn, encoded] { server->reply(conn, encoded); });
      });
    } else {
      server->reply(conn, halo::proto::encodeReply(
                              halo::proto::errorReply("unknown command '" + req->cmd + "'", 2)));
    }
  };
  (void)halo::sys::makeDirs(paths.run + "/modules", 0700);
  auto listening = halo::sys::LineServer::listen(**loop, paths.rfsSocket(module), handle);
  if (!listening.ok()) {
    halo::sys::reportReadiness("ERR " + listening.status().message());
    return 1;
  }
  server = std::move(*listening);
  control.setServer(server.get());
  (void)halo::sys::writeFileAtomic(paths.rfsPidFile(module), std::to_string(getpid()) + "\n");
  halo::sys::reportReadiness("OK");
  Status run = (*loop)->run();
  for (auto& t : verifiers) {
    t.join();
  }
  if (primary) {
    if (Status s = primary->stop(); !s.ok()) {
      fprintf(stderr, "halo-rfs: %s\n", s.message().c_str());
      exit_code = exit_code == 0 ? 1 : exit_code;
    }
  }
  primary.reset();
  secondary.reset();
  server.reset();
  ::unlink(paths.rfsPidFile(module).c_str());
  return run.ok() ? exit_code : 1;
}
