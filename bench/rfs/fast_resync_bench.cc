// halo-rfs-fastbench: one run of the fast-reintegration benchmark (bench/rfs/fastresync.sh; see
// README.md there): after a clean stop of the secondary and a rewrite of --percent of the tree's
// bytes in random 4 KiB blocks, Halo's reintegration of that change vs
// `rsync -a --inplace --no-whole-file` of the same change, in the same process and run; with
// --primary-crash, after a simulated crash of the primary too (its change log rebuilt from its
// activity log).
//
// --dir D holds the tree in D/primary (built by `halo-rfs-bench --mode make-tree --dir D`, which
// leaves D/tree.done). The run leaves the tree changed; everything else it makes it removes:
//   1. D/secondary and D/rsync-dst: `cp -a` copies of D/primary (untimed);
//   2. D/primary bind-mounted on D/primary-real: the real directory, which rsync reads once the
//      FUSE mount covers D/primary (Halo's reintegration reads the real directory too);
//   3. PrimaryService on D/primary (journal D/primary.db), SecondaryService on D/secondary
//      (journal D/secondary.db): the first reintegration (every file compared), untimed;
//   4. the secondary stops cleanly (its service destroyed); once the primary reports the link
//      lost it is unfenced, as the module runtime does when the peer is known to be outdated;
//   5. the change: distinct 4 KiB blocks drawn uniformly among all blocks of all regular files
//      (splitmix64 from --seed), rewritten with pseudo-random bytes through the mount D/primary;
//   5b. --primary-crash: the primary stopped, its journal made to look as if the process had been
//      killed before writing any change (unclean, no change rows), as fast_resync_test.cc does;
//      then started again on the same directory, journal and activity log (D/primary-al.db);
//   6. timed, in the order --first says: rsync from D/primary-real/ into D/rsync-dst/ (to its
//      exit), and Halo: the SecondaryService started again until both services report synced;
//   7. untimed: the services stopped, D/secondary and D/rsync-dst compared with D/primary.
// The process first moves into private mount and network namespaces (before any thread): its
// mounts and its traffic are invisible to the rest of the machine and vanish with it.
//
// Output on stdout: `result label=<change|first|halo|rsync> metric=<name> value=<number>`,
// `note label=... text`, and `error label=... what=...` (exit status 1) when the run fails.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/time_source.h"
#include "bench_util.h"
#include "rfs/service.h"
#include "rfs/tree_diff.h"
#include "sys/sqlite.h"

namespace halo::rfs::bench {
namespace {

constexpr uint64_t kBlock = 4096;

struct Config {
  std::string dir;
  double percent = 1.0;  // of the tree's bytes, rewritten
  uint64_t seed = 1;
  std::string first = "rsync";  // which timed copy goes first: rsync | halo
  bool drop_caches = false;
  bool verify = true;
  bool keep_copies = false;
  unsigned timeout_s = 900;
  int port = 5630;  // private network namespace: no clash with the machine
  std::string rsync = "rsync";
  unsigned pause_s = 0;        // before Halo's timed part: time to attach a profiler
  bool primary_crash = false;  // simulate the primary's crash after the change (5b)
};

void result(const std::string& label, const char* metric, double value) {
  std::printf("result label=%s metric=%s value=%.3f\n", label.c_str(), metric, value);
  std::fflush(stdout);
}
void note(const std::string& label, const std::string& text) {
  std::printf("note label=%s %s\n", label.c_str(), text.c_str());
  std::fflush(stdout);
}
bool error(const std::string& label, const std::string& what) {
  std::printf("error label=%s what=%s\n", label.c_str(), what.c_str());
  std::fflush(stdout);
  return false;
}
std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

uint64_t u64(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<uint64_t>() : 0;
}

void removeAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

// The services' events, with their times from the last restart(): what the benchmark waits for
// and reports.
class EventLog {
 public:
  explicit EventLog(TimeSource& time) : time_(time), t0_(time.monotonicTime()) {}

  EventSink sink(const std::string& side) {
    return [this, side](const ServiceEvent& e) {
      std::lock_guard<std::mutex> lock(mu_);
      const double at = std::chrono::duration<double>(time_.monotonicTime() - t0_).count();
      first_at_.emplace(side + ":" + e.kind, at);
      if (e.kind != "progress") {
        char when[32];
        std::snprintf(when, sizeof when, "%.3f", at);
        lines_.push_back(side + " " + when + " s " + e.kind + ": " + e.message);
      }
      synced_ += e.kind == "synced" ? 1 : 0;
      lost_ = lost_ || e.kind == "lost";
      cv_.notify_all();
    };
  }
  void restart(MonotonicTime t0) {
    std::lock_guard<std::mutex> lock(mu_);
    t0_ = t0;
    first_at_.clear();
    lines_.clear();
    synced_ = 0;
    lost_ = false;
  }
  // Both services synced (true), or a link lost or the deadline (false).
  bool waitSynced(std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, limit, [&] { return synced_ >= 2 || lost_; });
    return synced_ >= 2;
  }
  bool waitLost(std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return lost_; });
  }
  std::optional<double> firstAt(const std::string& side_kind) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = first_at_.find(side_kind);
    return it == first_at_.end() ? std::nullopt : std::optional<double>(it->second);
  }
  // The first event line containing `text` ("" when none).
  std::string find(const std::string& text) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& l : lines_) {
      if (l.find(text) != std::string::npos) {
        return l;
      }
    }
    return "";
  }
  void dump(const std::string& label) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& l : lines_) {
      note(label, "event=\"" + l + "\"");
    }
  }

 private:
  TimeSource& time_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  MonotonicTime t0_;
  std::map<std::string, double> first_at_;
  std::vector<std::string> lines_;
  int synced_ = 0;
  bool lost_ = false;
};

// The regular files of the tree and the blocks to rewrite.
struct FileInfo {
  std::string path;  // relative
  uint64_t size = 0;
  uint64_t first_block = 0;  // index of its first block among all the tree's blocks
};
struct Change {
  std::map<size_t, std::vector<uint64_t>> blocks;  // file index -> block numbers, ascending
  uint64_t count = 0;
  uint64_t bytes = 0;  // written (a file's last block may be short)
};

// `k` distinct indexes below `n` (Floyd's algorithm), from a splitmix64 stream: the same seed
// draws the same blocks on every machine (the modulo's bias is below n / 2^64).
std::set<uint64_t> drawDistinct(uint64_t n, uint64_t k, uint64_t seed) {
  std::set<uint64_t> out;
  uint64_t x = seed;
  for (uint64_t j = n - k; j < n; ++j) {
    const uint64_t t = splitmix64(x) % (j + 1);
    out.insert(out.count(t) != 0 ? j : t);
  }
  return out;
}

// What the primary's activity log holds (read while no service has it open).
struct ActivitySeen {
  uint64_t zones_named = 0;  // Zone entries among `zones`
  uint64_t others = 0;       // entries of other kinds
  int64_t epochs = 0;
  int64_t oldest_start_us = 0;
};
Status readActivityLog(const std::string& path,
                       const std::set<std::pair<std::string, uint64_t>>& zones, ActivitySeen* out) {
  HALO_ASSIGN_OR_RETURN(Database db, Database::open(path));
  HALO_ASSIGN_OR_RETURN(
      Statement st, db.prepare("SELECT DISTINCT kind, path, zone FROM al_entries WHERE root = 0"));
  while (true) {
    HALO_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) {
      break;
    }
    if (st.columnInt(0) != static_cast<int64_t>(ActivityLog::Kind::Zone)) {
      ++out->others;
    } else if (zones.count({st.columnText(1), static_cast<uint64_t>(st.columnInt(2))}) != 0) {
      ++out->zones_named;
    }
  }
  HALO_ASSIGN_OR_RETURN(Statement ep, db.prepare("SELECT count(*), min(start_us) FROM al_epochs"));
  HALO_ASSIGN_OR_RETURN(bool row, ep.step());
  if (row) {
    out->epochs = ep.columnInt(0);
    out->oldest_start_us = ep.columnInt(1);
  }
  return okStatus();
}

class FastBench {
 public:
  FastBench(const Config& c, TimeSource& time)
      : c_(c),
        time_(time),
        primary_(c.dir + "/primary"),
        real_(c.dir + "/primary-real"),
        secondary_(c.dir + "/secondary"),
        rsync_dst_(c.dir + "/rsync-dst"),
        events_(time) {}

  ~FastBench() { cleanup(); }

  int run() {
    const bool ok = prepare() && firstReintegration() && stopSecondary() && rewrite() &&
                    (!c_.primary_crash || crashPrimary()) && timed() && verify();
    cleanup();
    return ok ? 0 : 1;
  }

 private:
  // ---- 1, 2: the copies and the second view of the real directory ----
  bool prepare() {
    struct stat st {};
    if (::stat((c_.dir + "/tree.done").c_str(), &st) != 0 || ::stat(primary_.c_str(), &st) != 0) {
      return error("setup", "no tree in " + primary_ +
                                " (make it with halo-rfs-bench --mode make-tree --dir " + c_.dir +
                                ")");
    }
    // One run at a time in a directory: another's cleanup would remove this one's copies.
    lock_fd_ = ::open((c_.dir + "/fastbench.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      return error("setup", errnoText("lock " + c_.dir + "/fastbench.lock (another run here?)"));
    }
    locked_ = true;
    cleanupFiles();  // what an interrupted run left
    WalkOptions o;
    o.block_digests = false;
    auto walk = walkTree(primary_, o);
    if (!walk.ok()) {
      return error("setup", "walk " + primary_ + ": " + walk.status().message());
    }
    uint64_t blocks = 0;
    for (const auto& e : walk->manifest.entries) {
      newest_mtime_ = std::max(newest_mtime_, e.mtime_sec);
      if (S_ISREG(e.type_and_mode)) {
        tree_bytes_ += e.size;
        files_.push_back({e.path, e.size, blocks});
        blocks += (e.size + kBlock - 1) / kBlock;
      }
    }
    tree_blocks_ = blocks;
    result("change", "tree_bytes", static_cast<double>(tree_bytes_));
    result("change", "tree_files", static_cast<double>(files_.size()));
    result("change", "tree_blocks", static_cast<double>(tree_blocks_));
    for (const auto& copy : {secondary_, rsync_dst_}) {
      const MonotonicTime start = time_.monotonicTime();
      if (!spawn("setup", {"cp", "-a", primary_, copy})) {
        return false;
      }
      char text[128];
      std::snprintf(text, sizeof text, "copy=%s cp_s=%.1f", copy.c_str(), since(start));
      note("setup", text);
    }
    ::sync();
    if (::mkdir(real_.c_str(), 0755) != 0 ||
        ::mount(primary_.c_str(), real_.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return error("setup", errnoText("bind mount " + primary_ + " on " + real_));
    }
    bound_ = true;
    return true;
  }

  ServiceOptions options(const std::string& dir, const std::string& local, const std::string& peer,
                         const std::string& journal) {
    ServiceOptions o;
    ReplicatedDir d;
    d.dir = dir;
    o.dirs.push_back(d);
    o.link.module_id = 1;
    o.local_addr = local;
    o.peer_addr = peer;
    o.port = c_.port;
    o.journal = journal;
    // The activity log too, as halo-rfs runs it (its cost is on the application's path).
    o.activity_log = journal.substr(0, journal.size() - 3) + "-al.db";
    o.random = [this] {
      std::lock_guard<std::mutex> lock(random_mu_);
      return random_();
    };
    return o;
  }

  bool startSecondary() {
    auto s = SecondaryService::start(
        options(secondary_, "127.0.0.2", "127.0.0.1", c_.dir + "/secondary.db"), time_,
        events_.sink("secondary"));
    if (!s.ok()) {
      return error("halo", "secondary: " + s.status().message());
    }
    secondary_service_ = std::move(*s);
    return true;
  }

  bool startPrimary(const std::string& label) {
    auto p =
        PrimaryService::start(options(primary_, "127.0.0.1", "127.0.0.2", c_.dir + "/primary.db"),
                              time_, events_.sink("primary"));
    if (!p.ok()) {
      return error(label, "primary: " + p.status().message());
    }
    primary_service_ = std::move(*p);
    return true;
  }

  // ---- 3: the first reintegration (from a cp -a copy: every file compared), untimed ----
  bool firstReintegration() {
    if (!startPrimary("first")) {
      return false;
    }
    const MonotonicTime start = time_.monotonicTime();
    events_.restart(start);
    if (!startSecondary()) {
      return false;
    }
    if (!events_.waitSynced(std::chrono::seconds(c_.timeout_s))) {
      events_.dump("first");
      return error("first", "the first reintegration did not end (link lost or --timeout-s)");
    }
    const double secs = since(start);
    const auto rei = primary_service_->status()["reintegration"];
    result("first", "seconds", secs);
    result("first", "bytes_hashed", static_cast<double>(u64(rei, "bytes_hashed")));
    result("first", "bytes_copied", static_cast<double>(u64(rei, "bytes_copied")));
    note("first", "mode=" + rei.value("mode", std::string("-")));
    return true;
  }

  // ---- 4: a clean stop of the secondary; the primary goes on alone ----
  bool stopSecondary() {
    events_.restart(time_.monotonicTime());
    secondary_service_.reset();
    if (!events_.waitLost(std::chrono::seconds(60))) {
      events_.dump("halo");
      return error("halo", "the primary did not report the secondary's departure");
    }
    primary_service_->unfence();
    return true;
  }

  // ---- 5: the change, through the primary's mount ----
  bool rewrite() {
    const uint64_t want =
        static_cast<uint64_t>(static_cast<double>(tree_bytes_) * c_.percent / 100.0 / kBlock + 0.5);
    const uint64_t k = std::min(want, tree_blocks_);
    Change& change = change_;
    for (const uint64_t b : drawDistinct(tree_blocks_, k, c_.seed)) {
      // The file holding global block b: the last whose first block is <= b.
      auto it = std::upper_bound(files_.begin(), files_.end(), b,
                                 [](uint64_t v, const FileInfo& f) { return v < f.first_block; });
      const size_t i = static_cast<size_t>(std::prev(it) - files_.begin());
      change.blocks[i].push_back(b - files_[i].first_block);
    }
    // rsync's quick check skips a file whose size and mtime match, mtimes to the second: a
    // rewrite within the second of the copies' mtimes would go unseen (small trees only).
    while (std::chrono::duration_cast<std::chrono::seconds>(time_.systemTime().time_since_epoch())
               .count() <= newest_mtime_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    uint64_t data = c_.seed ^ 0xda7a000000000000ull;
    std::vector<uint64_t> buf(kBlock / sizeof(uint64_t));
    uint64_t big_blocks = 0;
    uint64_t big_files = 0;
    const MonotonicTime start = time_.monotonicTime();
    for (const auto& [i, blocks] : change.blocks) {
      const FileInfo& f = files_[i];
      const std::string path = primary_ + "/" + f.path;
      const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) {
        return error("change", errnoText("open " + path));
      }
      for (const uint64_t b : blocks) {
        for (auto& w : buf) {
          w = splitmix64(data);
        }
        const uint64_t off = b * kBlock;
        const size_t len = static_cast<size_t>(std::min(kBlock, f.size - off));
        if (::pwrite(fd, buf.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len)) {
          ::close(fd);
          return error("change", errnoText("pwrite " + path));
        }
        ++change.count;
        change.bytes += len;
      }
      if (::close(fd) != 0) {
        return error("change", errnoText("close " + path));
      }
      if (f.path.rfind("data/", 0) == 0) {
        big_blocks += blocks.size();
        ++big_files;
      }
    }
    const double write_s = since(start);
    ::sync();
    result("change", "rewritten_blocks", static_cast<double>(change.count));
    result("change", "rewritten_block_bytes", static_cast<double>(change.count * kBlock));
    result("change", "rewritten_bytes", static_cast<double>(change.bytes));
    result("change", "files_changed", static_cast<double>(change.blocks.size()));
    result("change", "big_files_changed", static_cast<double>(big_files));
    result("change", "big_file_blocks", static_cast<double>(big_blocks));
    result("change", "write_s", write_s);
    const auto changes = primary_service_->status()["changes"];
    result("change", "log_paths", static_cast<double>(u64(changes, "paths")));
    result("change", "log_dirty_bytes", static_cast<double>(u64(changes, "dirty_bytes")));
    note("change", "seed=" + std::to_string(c_.seed) +
                       " log_complete=" + (changes.value("complete", false) ? "yes" : "no"));
    return true;
  }

  // ---- 5b (--primary-crash): the primary crashes before its journal got any of the change ----
  // As fast_resync_test.cc simulates it: a clean stop, then its journal made unclean and empty
  // of changes, then a new PrimaryService on the same directory, journal and activity log, which
  // rebuilds the change log from the activity log's entries.
  bool crashPrimary() {
    const MonotonicTime start = time_.monotonicTime();
    if (Status s = primary_service_->stop(); !s.ok()) {
      return error("crash", "stopping the primary: " + s.message());
    }
    primary_service_.reset();
    // The zones the rewrite touched (ServiceOptions' zone size), and whether the activity log
    // still names each: the simulation deletes every change row, which a real crash can do only
    // while the epoch that admitted the change is live (else the journal has it).
    const uint64_t zone = ServiceOptions().zone_size;
    std::set<std::pair<std::string, uint64_t>> zones;
    uint64_t zone_bytes = 0;
    for (const auto& [i, blocks] : change_.blocks) {
      for (const uint64_t b : blocks) {
        const uint64_t z = b * kBlock / zone;
        if (zones.insert({files_[i].path, z}).second) {
          zone_bytes += std::min(zone, files_[i].size - z * zone);
        }
      }
    }
    ActivitySeen al;
    if (Status s = readActivityLog(c_.dir + "/primary-al.db", zones, &al); !s.ok()) {
      return error("crash", "reading the activity log: " + s.message());
    }
    const int64_t now_us =
        std::chrono::duration_cast<std::chrono::microseconds>(time_.systemTime().time_since_epoch())
            .count();
    result("crash", "zones", static_cast<double>(zones.size()));
    result("crash", "zone_bytes", static_cast<double>(zone_bytes));
    result("crash", "bound_bytes", static_cast<double>(change_.count * kBlock + zone_bytes));
    result("crash", "al_zones_named", static_cast<double>(al.zones_named));
    result("crash", "al_other_entries", static_cast<double>(al.others));
    result("crash", "al_epochs", static_cast<double>(al.epochs));
    result("crash", "al_epoch_age_s", static_cast<double>(now_us - al.oldest_start_us) / 1e6);
    if (al.zones_named != zones.size()) {
      return error("crash", "the activity log names " + std::to_string(al.zones_named) +
                                " of the " + std::to_string(zones.size()) +
                                " zones rewritten (an epoch ended: the journal had the rest, so "
                                "deleting its rows is no crash's doing)");
    }
    {
      auto db = Database::open(c_.dir + "/primary.db");
      Status s = db.ok() ? db->exec(
                               "DELETE FROM rfs_changes; "
                               "UPDATE rfs_state SET value = 0 WHERE key = 'clean'")
                         : db.status();
      if (!s.ok() || db->changes() != 1) {
        return error("crash",
                     "rewriting the journal: " + (s.ok() ? "no 'clean' row" : s.message()));
      }
    }
    events_.restart(time_.monotonicTime());
    if (!startPrimary("crash")) {
      return false;
    }
    const std::string names = events_.find("its activity log names");
    note("crash", "event=\"" + names + "\"");
    if (names.empty()) {
      events_.dump("crash");
      return error("crash", "the restarted primary did not recover from its activity log");
    }
    const size_t at = names.find("names ") + 6;
    result("crash", "al_places", std::stod(names.substr(at, names.find(' ', at) - at)));
    const auto changes = primary_service_->status()["changes"];
    result("crash", "log_paths", static_cast<double>(u64(changes, "paths")));
    result("crash", "log_dirty_bytes", static_cast<double>(u64(changes, "dirty_bytes")));
    result("crash", "restart_s", since(start));
    return true;
  }

  // ---- 6: the two timed copies of the change ----
  bool timed() {
    bool ok = true;
    for (const std::string& what : c_.first == "halo" ? std::vector<std::string>{"halo", "rsync"}
                                                      : std::vector<std::string>{"rsync", "halo"}) {
      ok = (what == "halo" ? timeHalo() : timeRsync()) && ok;
    }
    return ok;
  }

  // The same cache state before each timed copy: warm (what the copy reads, read once just
  // before: the new tree and the copy it updates) or cold (--drop-caches: machine-wide drop).
  bool prepareCaches(const std::string& label, const std::vector<std::string>& trees) {
    ::sync();
    const MonotonicTime start = time_.monotonicTime();
    if (c_.drop_caches) {
      const int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
      const bool ok = fd >= 0 && ::write(fd, "3\n", 2) == 2;
      if (fd >= 0) {
        ::close(fd);
      }
      if (!ok) {
        return error(label, errnoText("write 3 to /proc/sys/vm/drop_caches"));
      }
      note(label, "caches=cold");
      return true;
    }
    std::vector<char> buf(1 << 20);
    uint64_t bytes = 0;
    for (const auto& tree : trees) {
      std::error_code ec;
      for (auto it = std::filesystem::recursive_directory_iterator(tree, ec);
           !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_symlink(ec) || !it->is_regular_file(ec)) {
          continue;
        }
        const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME);
        ssize_t n = 0;
        while (fd >= 0 && (n = ::read(fd, buf.data(), buf.size())) > 0) {
          bytes += static_cast<uint64_t>(n);
        }
        if (fd >= 0) {
          ::close(fd);
        }
      }
      if (ec) {
        errno = ec.value();
        return error(label, errnoText("reading " + tree + " to warm the cache"));
      }
    }
    char text[96];
    std::snprintf(text, sizeof text, "caches=warm warm_mb=%.0f warm_s=%.1f",
                  static_cast<double>(bytes) / 1e6, since(start));
    note(label, text);
    return true;
  }

  bool timeHalo() {
    if (!prepareCaches("halo", {real_, secondary_})) {
      return false;
    }
    if (c_.pause_s > 0) {
      note("halo", "pausing=" + std::to_string(c_.pause_s) + "s");
      std::this_thread::sleep_for(std::chrono::seconds(c_.pause_s));
    }
    const uint64_t sent0 = u64(primary_service_->status(), "bytes_sent");  // a running total
    rusage ru0{};
    ::getrusage(RUSAGE_SELF, &ru0);
    const MonotonicTime t0 = time_.monotonicTime();
    events_.restart(t0);
    if (!startSecondary()) {
      return false;
    }
    const bool synced = events_.waitSynced(std::chrono::seconds(c_.timeout_s));
    const double secs = since(t0);
    rusage ru1{};
    ::getrusage(RUSAGE_SELF, &ru1);
    if (!synced) {
      events_.dump("halo");
      return error("halo", "the reintegration did not end (link lost or --timeout-s)");
    }
    // Read at once: the reintegration's `seconds` goes on counting after its end.
    const auto status = primary_service_->status();
    const auto rei = status["reintegration"];
    ::sync();
    const double sync_s = since(t0);
    const std::string mode = rei.value("mode", std::string("-"));
    result("halo", "seconds", secs);
    result("halo", "sync_seconds", sync_s);
    result("halo", "mode_changes", mode == "changes" ? 1 : 0);
    result("halo", "bytes_copied", static_cast<double>(u64(rei, "bytes_copied")));
    result("halo", "bytes_hashed", static_cast<double>(u64(rei, "bytes_hashed")));
    result("halo", "bytes_sent", static_cast<double>(u64(status, "bytes_sent") - sent0));
    result("halo", "files_total", static_cast<double>(u64(rei, "files_total")));
    result("halo", "bytes_total", static_cast<double>(u64(rei, "bytes_total")));
    result("halo", "reintegration_s", rei.value("seconds", 0.0));
    result("halo", "cpu_user_s", seconds(ru1.ru_utime) - seconds(ru0.ru_utime));
    result("halo", "cpu_sys_s", seconds(ru1.ru_stime) - seconds(ru0.ru_stime));
    for (const auto& [key, metric] : std::vector<std::pair<std::string, const char*>>{
             {"secondary:connected", "connected_s"},
             {"primary:synced", "primary_synced_s"},
             {"secondary:synced", "secondary_synced_s"}}) {
      if (auto at = events_.firstAt(key)) {
        result("halo", metric, *at);
      }
    }
    const std::string begins = events_.find("Reintegration of the secondary begins");
    if (!begins.empty()) {
      result("halo", "begins_s", std::stod(begins.substr(begins.find(' ') + 1)));
    }
    note("halo", "mode=" + mode + " phase=" + rei.value("phase", std::string("-")) + " text=\"" +
                     rei.value("text", std::string()) + "\"");
    note("halo", "begins=\"" + begins + "\"");
    if (mode != "changes") {
      events_.dump("halo");
      return error("halo", "the reintegration was not a fast one (mode " + mode + ")");
    }
    return true;
  }

  bool timeRsync() {
    if (!prepareCaches("rsync", {real_, rsync_dst_})) {
      return false;
    }
    const std::string stats = c_.dir + "/rsync-stats.txt";
    rusage ru{};
    int status = 0;
    std::string why;
    const MonotonicTime t0 = time_.monotonicTime();
    const bool ran = spawnAndWait(
        time_,
        {c_.rsync, "-a", "--inplace", "--no-whole-file", "--stats", real_ + "/", rsync_dst_ + "/"},
        std::chrono::seconds(c_.timeout_s), &status, &ru, &why, stats);
    const double secs = since(t0);
    if (!ran || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return error("rsync", ran ? "rsync: " + describeStatus(status) : why);
    }
    ::sync();
    const double sync_s = since(t0);
    result("rsync", "seconds", secs);
    result("rsync", "sync_seconds", sync_s);
    result("rsync", "cpu_user_s", seconds(ru.ru_utime));
    result("rsync", "cpu_sys_s", seconds(ru.ru_stime));
    // "Literal data: 23,011,328 bytes" and the like.
    std::ifstream in(stats);
    std::string line;
    const std::vector<std::pair<std::string, const char*>> wanted = {
        {"Number of regular files transferred:", "files_transferred"},
        {"Literal data:", "literal_bytes"},
        {"Matched data:", "matched_bytes"},
        {"Total bytes sent:", "bytes_sent"},
        {"Total bytes received:", "bytes_received"}};
    int found = 0;
    while (std::getline(in, line)) {
      for (const auto& [prefix, metric] : wanted) {
        if (line.rfind(prefix, 0) == 0) {
          std::string digits;
          for (char ch : line.substr(prefix.size())) {
            if (ch >= '0' && ch <= '9') {
              digits += ch;
            } else if (ch != ',' && ch != ' ' && !digits.empty()) {
              break;
            }
          }
          result("rsync", metric, digits.empty() ? 0 : std::stod(digits));
          ++found;
        }
      }
    }
    if (found != static_cast<int>(wanted.size())) {
      note("rsync", "stats_lines_found=" + std::to_string(found));
    }
    return true;
  }

  // ---- 7: both copies compared with the new tree (untimed) ----
  bool verify() {
    secondary_service_.reset();  // the applier closes its files first
    if (primary_service_) {
      if (Status s = primary_service_->stop(); !s.ok()) {
        note("halo", "unmount=\"" + s.message() + "\"");
      }
      primary_service_.reset();
    }
    if (!c_.verify) {
      return true;
    }
    const MonotonicTime start = time_.monotonicTime();
    WalkOptions o;
    o.block_size = 1 << 20;
    o.threads = 2;
    auto p = walkTree(primary_, o);
    if (!p.ok()) {
      return error("verify", "walk " + primary_ + ": " + p.status().message());
    }
    bool ok = true;
    for (const auto& [label, copy] : std::vector<std::pair<std::string, std::string>>{
             {"halo", secondary_}, {"rsync", rsync_dst_}}) {
      auto w = walkTree(copy, o);
      if (!w.ok()) {
        ok = error(label, "verify: walk " + copy + ": " + w.status().message());
        continue;
      }
      auto diffs = diffTrees(p->manifest, w->manifest, DiffOptions{});
      if (!diffs.ok()) {
        ok = error(label, "verify: " + diffs.status().message());
        continue;
      }
      result(label, "verify_entries", static_cast<double>(p->manifest.entries.size()));
      result(label, "verify_differences", static_cast<double>(diffs->size()));
      for (size_t i = 0; i < diffs->size() && i < 10; ++i) {
        error(label, "the copy differs: " + describeDiff((*diffs)[i]));
      }
      if (!diffs->empty()) {
        ok = error(label, "the copy differs from the primary in " + std::to_string(diffs->size()) +
                              " entries");
      }
    }
    char text[32];
    std::snprintf(text, sizeof text, "verify_s=%.1f", since(start));
    note("verify", text);
    return ok;
  }

  // ---- 8: services stopped, mounts gone, copies and journals removed (also on failure) ----
  void cleanup() {
    secondary_service_.reset();
    if (primary_service_) {
      (void)primary_service_->stop();
      primary_service_.reset();
    }
    if (bound_) {
      if (::umount2(real_.c_str(), MNT_DETACH) != 0) {
        note("cleanup", "umount_failed=" + real_);
        return;  // never remove through a mount
      }
      bound_ = false;
    }
    cleanupFiles();
  }

  void cleanupFiles() {
    if (!locked_) {
      return;  // another run's files
    }
    ::rmdir(real_.c_str());
    ::unlink((c_.dir + "/rsync-stats.txt").c_str());
    for (const char* db : {"/primary.db", "/secondary.db", "/primary-al.db", "/secondary-al.db"}) {
      for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        ::unlink((c_.dir + db + suffix).c_str());
      }
    }
    if (!c_.keep_copies) {
      removeAll(secondary_);
      removeAll(rsync_dst_);
    }
  }

  bool spawn(const std::string& label, const std::vector<std::string>& args) {
    int status = 0;
    rusage ru{};
    std::string why;
    if (!spawnAndWait(time_, args, std::chrono::seconds(c_.timeout_s), &status, &ru, &why) ||
        !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return error(label,
                   args[0] + " " + args[1] + ": " + (why.empty() ? describeStatus(status) : why));
    }
    return true;
  }

  double since(MonotonicTime start) const {
    return std::chrono::duration<double>(time_.monotonicTime() - start).count();
  }

  const Config& c_;
  TimeSource& time_;
  const std::string primary_;
  const std::string real_;
  const std::string secondary_;
  const std::string rsync_dst_;
  EventLog events_;
  std::mutex random_mu_;
  std::mt19937_64 random_{std::random_device{}()};
  std::vector<FileInfo> files_;  // regular files, sorted by path
  Change change_;                // the rewrite (5)
  uint64_t tree_bytes_ = 0;
  uint64_t tree_blocks_ = 0;
  int64_t newest_mtime_ = 0;  // of the tree's entries, seconds
  bool bound_ = false;
  int lock_fd_ = -1;  // D/fastbench.lock, held (flock) for the whole run; closed at exit
  bool locked_ = false;
  std::unique_ptr<PrimaryService> primary_service_;
  std::unique_ptr<SecondaryService> secondary_service_;
};

}  // namespace
}  // namespace halo::rfs::bench

int main(int argc, char** argv) {
  halo::rfs::bench::Config c;
  CLI::App app{"halo-rfs-fastbench: one run of bench/rfs/fastresync.sh (fast reintegration)"};
  app.add_option("--dir", c.dir, "holds primary/ (from halo-rfs-bench --mode make-tree)")
      ->required();
  app.add_option("--percent", c.percent, "share of the tree's bytes rewritten, in 4 KiB blocks")
      ->capture_default_str();
  app.add_option("--seed", c.seed, "draws the blocks and their new bytes")->capture_default_str();
  app.add_option("--first", c.first, "which timed copy goes first")
      ->check(CLI::IsMember({"rsync", "halo"}))
      ->capture_default_str();
  app.add_flag("--drop-caches", c.drop_caches,
               "cold caches (sync; drop_caches=3, machine-wide) instead of warm");
  app.add_flag("!--no-verify", c.verify, "do not compare the copies with the primary");
  app.add_flag("--keep-copies", c.keep_copies, "keep DIR/secondary and DIR/rsync-dst");
  app.add_option("--timeout-s", c.timeout_s, "bound on every wait")->capture_default_str();
  app.add_option("--port", c.port, "loopback port (private namespace)")->capture_default_str();
  app.add_option("--rsync", c.rsync, "the rsync program")->capture_default_str();
  app.add_option("--pause-before-halo-s", c.pause_s,
                 "sleep this long (after a note) before Halo's timed part: to attach a profiler")
      ->capture_default_str();
  app.add_flag("--primary-crash", c.primary_crash,
               "after the change, simulate the primary's crash (journal unclean, without the "
               "change) and restart it: the change log comes from its activity log");
  CLI11_PARSE(app, argc, argv);
  if (c.percent <= 0 || c.percent > 100 || c.timeout_s == 0) {
    std::fprintf(stderr, "--percent must be in (0, 100], --timeout-s positive\n");
    return 2;
  }
  std::string why;
  if (!halo::rfs::bench::enterPrivateNamespaces(why)) {
    std::printf("error label=setup what=%s\n", why.c_str());
    return 1;
  }
  halo::RealTimeSource time;
  halo::rfs::bench::FastBench bench(c, time);
  return bench.run();
}
