// halo start | stop | restart | stopstart | forcestop | shutdown | waitstart | waitstop |
// waitstate | state
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "base/strings.h"
#include "cli/commands.h"
#include "module/resource_store.h"
#include "sys/files.h"

namespace halo::cli {

namespace {

int printReply(const Cli& cli, const Result<proto::Reply>& r) {
  if (!r.ok()) {
    return cli.fail(r.status());
  }
  if (!r->ok()) {
    return cli.fail(r->message, r->exit_code);
  }
  if (!r->message.empty()) {
    std::cout << r->message << "\n";
  }
  return kExitOk;
}

// Waits through the runtime (which answers when the condition holds). While the module has no
// runtime (stopped, or being respawned by halod) the persisted state decides, re-checked every
// 100 ms until the deadline.
int waitFor(Cli& cli, const std::string& kind, const std::string& target,
            std::optional<int> timeout_s) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  const std::string& m = cli.module;
  const auto deadline =
      timeout_s ? std::optional(cli.time.monotonicTime() + std::chrono::seconds(*timeout_s))
                : std::nullopt;
  while (true) {
    std::optional<Millis> left;
    if (deadline) {
      left = std::chrono::duration_cast<Millis>(*deadline - cli.time.monotonicTime());
      if (left->count() <= 0) {
        auto st = cli.moduleState(m);
        return cli.fail("timed out; module " + m + " is " + st.state.describe());
      }
    }
    proto::Request req{"wait", m, cli.identity, {{"kind", kind}, {"state", target}}};
    if (left) {
      req.params["timeout_ms"] = left->count();
    }
    auto r = cli.runtime(m, req, std::nullopt);
    if (r.ok()) {
      if (r->ok()) {
        std::cout << m << ": " << r->message << "\n";
        return kExitOk;
      }
      return cli.fail("module " + m + ": " + r->message, r->exit_code);
    }
    if (r.status().code() != StatusCode::Unavailable) {
      return cli.fail(r.status());
    }
    // No runtime: the module is stopped, or its runtime is being restarted.
    auto st = cli.moduleState(m);
    if (!st.runtime_alive) {
      const bool stopped = st.state.main == core::MainState::Stop;
      if ((kind == "stop" || (kind == "state" && target == "STOP")) && stopped) {
        std::cout << m << ": " << st.state.describe() << "\n";
        return kExitOk;
      }
      if (kind == "start" && stopped && !cli.startPending(m)) {
        const std::string why = st.details.value("last_error", "");
        return cli.fail("module " + m + " is " + st.state.describe() +
                        (why.empty() ? "" : ": " + why) + "; see halo log -m " + m);
      }
      const bool pending = cli.startPending(m);
      if (!stopped && !pending) {
        // Nothing will bring a runtime back: waiting longer cannot succeed.
        return cli.fail("module " + m + " is " + st.state.describe() +
                        " but its runtime is not running and halod is not restarting it; start "
                        "halod, or start the module again with halo start -m " +
                        m);
      }
      if (stopped && !pending) {
        return cli.fail("module " + m + " is " + st.state.describe() +
                        "; start it with halo "
                        "start -m " +
                        m);
      }
    }
    usleep(100000);
  }
}

}  // namespace

int controlStart(Cli& cli, const std::string& verb, const std::string& fullsync) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  if (!sys::pathExists(cli.paths.activeConfDir(cli.module) + "/userconfig.xml")) {
    return cli.fail("module " + cli.module + " is not configured: run halo config -m " +
                    cli.module);
  }
  // A runtime that reached STOP exits right after answering its waiters: give it (and halod,
  // which reaps it) a moment instead of refusing a start that follows a stop.
  auto st = cli.moduleState(cli.module);
  for (int i = 0; i < 100 && st.runtime_alive && st.state.main == core::MainState::Stop; ++i) {
    usleep(50000);
    st = cli.moduleState(cli.module);
  }
  if (st.runtime_alive) {
    return cli.fail("module " + cli.module + " is already started (" + st.state.describe() +
                    "); use halo restart or halo stopstart");
  }
  if (!fullsync.empty()) {
    // One-shot and persistent: the replication of the next role change reads and removes it.
    s = sys::writeFileAtomic(cli.paths.moduleVarDir(cli.module) + "/fullsync", "1\n");
    if (!s.ok()) {
      return cli.fail(s);
    }
  }
  nlohmann::json params = nlohmann::json::object();
  if (verb != "start") {
    params["verb"] = verb;
  }
  auto reply = cli.daemon(proto::Request{"start", cli.module, cli.identity, params});
  for (int i = 0; i < 40 && reply.ok() && !reply->ok() &&
                  reply->message.find("already started") != std::string::npos;
       ++i) {
    usleep(50000);
    reply = cli.daemon(proto::Request{"start", cli.module, cli.identity, params});
  }
  return printReply(cli, reply);
}

int controlCommand(Cli& cli, const std::string& verb) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto r = cli.runtime(cli.module, proto::Request{verb, cli.module, cli.identity, {}});
  if (!r.ok() && r.status().code() == StatusCode::Unavailable) {
    return cli.fail("module " + cli.module + " is not started (" +
                    cli.moduleState(cli.module).state.describe() + ")");
  }
  return printReply(cli, r);
}

int controlShutdown(Cli& cli) {
  int rc = kExitOk;
  std::vector<std::string> stopping;
  for (const auto& m : cli.installedModules()) {
    auto r = cli.runtime(m, proto::Request{"stop", m, cli.identity, {}});
    if (r.ok() && !r->ok()) {
      r = cli.runtime(m, proto::Request{"forcestop", m, cli.identity, {}});
    }
    if (r.ok() && r->ok()) {
      stopping.push_back(m);
    }
  }
  for (const auto& m : stopping) {
    cli.module = m;
    if (waitFor(cli, "stop", "STOP", std::nullopt) != kExitOk) {
      rc = kExitFailure;
    }
  }
  if (stopping.empty()) {
    std::cout << "No module was running\n";
  }
  return rc;
}

int controlWait(Cli& cli, const std::string& kind, const std::string& state,
                std::optional<int> timeout_s) {
  std::string target = state;
  if (kind == "state") {
    auto parsed = core::parseMainState(state);
    if (!parsed) {
      return cli.fail("unknown state '" + state +
                          "' (expected STOP, WAIT, ALONE, PRIM, SECOND "
                          "or UP)",
                      kExitUsage);
    }
    target = core::mainStateName(*parsed);
  }
  return waitFor(cli, kind, target, timeout_s);
}

namespace {

// Replicated directories: the replication process, its session, the reintegration's progress.
void printReplication(const nlohmann::json& r) {
  const std::string process = r.value("process", "stopped");
  std::cout << "  replication: process " << process;
  if (process == "primary") {
    std::cout << (r.value("session", false)
                      ? (r.value("synced", false) ? ", secondary in sync"
                                                  : ", secondary reintegrating")
                      : ", no secondary connected")
              << (r.value("fenced", false)
                      ? ", FENCED (acknowledgements wait until the secondary is outdated)"
                      : "")
              << (r.value("synced", false)
                      ? "; " + std::to_string(r.value("not_durable", uint64_t{0})) +
                            " operations not yet on its disk (tracked until they are)"
                      : "")
              << "; " << humanBytes(static_cast<double>(r.value("bytes_sent", uint64_t{0})))
              << " sent; replication " << r.value("rep_bandwidth_kib_s", int64_t{0})
              << " KB/s, reintegration " << r.value("rei_bandwidth_kib_s", int64_t{0}) << " KB/s";
  } else if (process == "secondary") {
    std::cout << ", " << r.value("state", "?");
    if (r.contains("end_reason")) {
      std::cout << " (" << r.value("end_reason", "") << ")";
    }
  }
  std::cout << "\n";
  if (r.contains("changes")) {
    // What a returning secondary would get (DESIGN 6.3): the change log since the sync point.
    const auto& c = r["changes"];
    std::cout << "  changes:     since sync point " << std::hex << c.value("base", uint64_t{0})
              << std::dec << ": " << c.value("paths", uint64_t{0}) << " paths, "
              << c.value("dirty_bytes", uint64_t{0}) << " bytes of changed blocks"
              << (c.value("complete", true)
                      ? ""
                      : " (INCOMPLETE: the next reintegration compares every file)")
              << "\n";
  } else if (process == "secondary") {
    std::cout << "  sync point:  " << std::hex << r.value("base", uint64_t{0}) << std::dec
              << (r.value("base", uint64_t{0}) == 0 ? " (none: every file is compared)" : "")
              << "\n";
  }
  if (r.contains("reintegration")) {
    const auto& p = r["reintegration"];
    std::cout << "  reintegration: " << p.value("text", "");
    if (p.contains("phase")) {
      std::cout << " [" << p.value("phase", "") << ", " << p.value("bytes_copied", uint64_t{0})
                << " bytes copied]";
    }
    std::cout << "\n";
  }
  for (const auto& d : r.value("dirs", nlohmann::json::array())) {
    std::cout << "  replicated:  " << d.get<std::string>() << "\n";
  }
}

// The mirror part of `halo state -v`: peer, data generation, heartbeat counters, VIPs.
void printMirror(const nlohmann::json& m) {
  const auto& g = m["generation"];
  std::cout << "  mirror:    this node " << m.value("local_node", "") << ", peer "
            << m.value("peer_node", "") << " "
            << (m.value("peer_alive", false) ? m.value("peer_state", "") : "unreachable")
            << "\n  data:      generation " << std::hex << g.value("current", uint64_t{0})
            << " (parent " << g.value("parent", uint64_t{0}) << std::dec << ")"
            << (g.value("uptodate", false) ? ", up to date" : ", NOT up to date")
            << (g.value("resync_interrupted", false) ? ", reintegration interrupted" : "")
            << (g.value("alone", false) ? ", written alone" : "") << ", role epoch "
            << g.value("role_epoch", uint64_t{0}) << "\n";
  for (const auto& h : m.value("heartbeats", nlohmann::json::array())) {
    const uint64_t refused =
        h.value("forged", uint64_t{0}) + h.value("replayed", uint64_t{0}) +
        h.value("truncated", uint64_t{0}) + h.value("bad_magic", uint64_t{0}) +
        h.value("foreign_module", uint64_t{0}) + h.value("key_mismatch", uint64_t{0}) +
        h.value("malformed", uint64_t{0}) + h.value("wrong_source", uint64_t{0}) +
        h.value("wrong_node", uint64_t{0});
    std::cout << "  heartbeat: " << std::left << std::setw(12) << h.value("ident", "") << " "
              << (h.value("up", false) ? "up  " : "down") << "  sent "
              << h.value("sent", uint64_t{0}) << ", accepted " << h.value("accepted", uint64_t{0})
              << ", refused " << refused;
    if (refused != 0) {
      std::cout << " (forged " << h.value("forged", uint64_t{0}) << ", replayed "
                << h.value("replayed", uint64_t{0}) << ", truncated "
                << h.value("truncated", uint64_t{0}) << ", bad magic "
                << h.value("bad_magic", uint64_t{0}) << ", foreign module "
                << h.value("foreign_module", uint64_t{0}) << ", key mismatch "
                << h.value("key_mismatch", uint64_t{0}) << ", malformed "
                << h.value("malformed", uint64_t{0}) << ", wrong source "
                << h.value("wrong_source", uint64_t{0}) << ", wrong node "
                << h.value("wrong_node", uint64_t{0}) << ")";
    }
    std::cout << "\n";
  }
  for (const auto& v : m.value("vip", nlohmann::json::array())) {
    std::cout << "  vip:       " << v.value("addr", "") << " on " << v.value("interface", "?")
              << (v.value("present", false) ? " present" : " absent")
              << (v.value("owned", false) ? " (added by this node)" : "") << "\n";
  }
  if (m.contains("rfs")) {
    printReplication(m["rfs"]);
  }
}

// What split brains left aside on this node (quarantine.h): one folder per recovery.
void printSplitBrains(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> folders;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    folders.push_back(e.path().string());
  }
  std::sort(folders.begin(), folders.end());
  for (const auto& f : folders) {
    std::ifstream in(f + "/CHANGES.txt");
    int changed = 0;
    for (std::string line; std::getline(in, line);) {
      changed += line.rfind("changed ", 0) == 0 ? 1 : 0;
    }
    std::cout << "  split brain: " << changed << " objects this node changed while isolated, kept "
              << "in " << f << " (see CHANGES.txt)\n";
  }
}

}  // namespace

int controlState(Cli& cli, bool verbose, bool lq) {
  if (cli.module.empty()) {
    const auto mods = cli.installedModules();
    std::cout << "---------------------- Summary State ----------------------\n";
    if (mods.empty()) {
      std::cout << "  (no module installed)\n";
    }
    for (const auto& m : mods) {
      std::cout << "  " << std::left << std::setw(20) << m << " | "
                << cli.moduleState(m).state.describe() << "\n";
    }
    return kExitOk;
  }
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  const std::string& m = cli.module;
  auto st = cli.moduleState(m);
  std::cout << m << ": " << st.state.describe() << "\n";
  if (lq) {
    return core::stateExitCode(st.state.main);
  }
  if (!verbose) {
    return kExitOk;
  }
  const auto& d = st.details;
  std::cout << "  runtime:   "
            << (st.runtime_alive ? "running (pid " + std::to_string(d.value("pid", 0)) + ")"
                                 : std::string("not running"))
            << "\n  operation: " << d.value("operation", "none");
  if (d.contains("script")) {
    std::cout << " (running script " << d.value("script", "") << ")";
  }
  std::cout << "\n";
  if (!d.value("last_error", "").empty()) {
    std::cout << "  last error: " << d.value("last_error", "") << "\n";
  }
  if (d.contains("checkers") && !d["checkers"].empty()) {
    std::cout << "  checkers:\n";
    for (const auto& c : d["checkers"]) {
      std::cout << "    " << std::left << std::setw(20) << c.value("resource", "") << " "
                << std::setw(8) << c.value("state", "") << " when " << std::setw(5)
                << c.value("when", "") << " " << c.value("target", "")
                << (c.value("active", false) ? "" : " (inactive)");
      if (!c.value("detail", "").empty()) {
        std::cout << "  last: " << c.value("detail", "");
      }
      std::cout << "\n";
    }
  }
  if (d.contains("procs") && !d["procs"].empty()) {
    std::cout << "  monitored processes:\n";
    for (const auto& p : d["procs"]) {
      std::cout << "    " << std::left << std::setw(20) << p.value("resource", "") << " "
                << std::setw(8) << p.value("state", "") << " class " << p.value("class", "")
                << "  last: " << p.value("detail", "") << "\n";
    }
  }
  if (d.contains("mirror")) {
    printMirror(d["mirror"]);
    printSplitBrains(cli.paths.moduleVarDir(m) + "/splitbrain");
  }
  if (d.contains("loop")) {
    std::cout << "  maxloop:   " << d["loop"].value("count", 0) << " automatic action(s) of "
              << d["loop"].value("maxloop", 0) << " allowed\n";
  }
  auto res = ResourceStore::open(cli.paths.moduleResourceDb(m));
  if (res.ok()) {
    auto list = res->list();
    if (list.ok() && !list->empty()) {
      std::cout << "  resources:\n";
      for (const auto& r : *list) {
        std::cout << "    " << std::left << std::setw(28) << r.name << " "
                  << (r.value.empty() ? resourceStateName(r.state) : r.value) << "  (by "
                  << r.setter << ")\n";
      }
    }
  }
  if (sys::pathExists(cli.paths.activeBinDir(m) + "/state")) {
    std::cout << "  application state (script state):\n" << std::flush;
    (void)cli.runScript(m, cli.paths.activeBinDir(m), cli.paths.activeConfDir(m), "state",
                        {core::mainStateName(st.state.main)});
  }
  return kExitOk;
}

}  // namespace halo::cli
