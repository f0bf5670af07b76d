// halo-rfs-bench: measures one file-system path for bench/rfs/run.sh (see README.md there).
//
// Modes:
//   plain       the measurements run in --dir as it is (the native directory, or the mount point
//               of a reference FUSE file system that run.sh mounted);
//   halo-fuse   FuseFs is mounted over --dir/primary with a sink that acknowledges at once;
//   halo-repl   the replication services of halo-rfs over loopback TCP: PrimaryService (FUSE
//               over --dir/primary, hub, session) -> SecondaryService (applier on
//               --dir/secondary), after their initial reintegration (no network).
//   make-tree   builds the full-reintegration source tree in --dir/primary (see README.md):
//               --tree-files files of --tree-file-mib MiB of pseudo-random data, plus a copy
//               (cp -a) of --tree-source; kept, and marked complete by --dir/tree.done;
//   halo-resync the full reintegration of that tree into the empty --dir/secondary: the
//               PrimaryService over --dir/primary, then the SecondaryService is started and
//               timed until both report "synced"; the copy is then compared with the source;
//   rsync       the reference: `rsync -a --dir/primary/ --dir/rsync/` into an empty directory on
//               the same file system, timed to its exit; the copy is then compared too.
//
// The process first moves into private mount and network namespaces (before any thread), so its
// mount and its traffic are invisible to the rest of the machine and vanish with it.
//
// Output: one line per measurement on stdout,
//   result label=<label> metric=<name> value=<number>
// and `error label=<label> what=<text>` on stdout (exit status 1) when the mode cannot run.

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/time_source.h"
#include "bench_util.h"
#include "rfs/applier.h"
#include "rfs/fuse_fs.h"
#include "rfs/service.h"
#include "rfs/tree_diff.h"

extern char** environ;

namespace halo::rfs::bench {
namespace {

struct Config {
  std::string mode = "plain";
  std::string dir;
  std::string label;
  std::string tar_file;  // empty: no untar measurement
  unsigned seq_mib = 512;
  unsigned fsync_samples = 2000;
  unsigned creates = 20000;
  unsigned rtt_samples = 2000;
  std::string only;        // one measurement (seq, fsync, creates, untar); empty: all
  std::string paired_dir;  // fsync: a native directory on the same file system, measured in turn
  bool peer_sync = false;  // halo-repl: the applier fsyncs on Fsync ops (async="none")
  int port = 5630;         // private network namespace: no clash with the machine
  // Full reintegration (make-tree, halo-resync, rsync).
  unsigned tree_files = 16;
  unsigned tree_file_mib = 128;
  std::string tree_source = "/usr/include";  // "" for none
  bool reuse_tree = false;    // use --dir/primary as it is when --dir/tree.done matches
  bool keep_tree = false;     // keep a tree this run built
  bool keep_copy = false;     // keep --dir/secondary or --dir/rsync
  bool drop_caches = false;   // cold: sync + drop_caches=3 (machine-wide) before timing
  bool verify = true;         // compare the copy with the source afterwards (untimed)
  unsigned timeout_s = 900;   // bound on the timed copy
  unsigned progress_ms = 0;   // halo-resync: print the primary's progress this often (0: never)
  unsigned prefault_mib = 0;  // fault in (then free) this much memory just before timing
  std::string rsync = "rsync";
};

// A sink for the FUSE-only mode: numbers each operation and acknowledges it at once.
class AckSink : public OpSink {
 public:
  uint64_t submit(Op /*op*/) override { return ++seq_; }
  void waitAcked(uint64_t /*seq*/) override {}
  void changesUntrackable() override {}  // nothing is tracked here

 private:
  std::atomic<uint64_t> seq_{0};
};

class Bench {
 public:
  Bench(const Config& config, TimeSource& time) : config_(config), time_(time) {}

  void result(const char* metric, double value) const {
    std::printf("result label=%s metric=%s value=%.3f\n", config_.label.c_str(), metric, value);
    std::fflush(stdout);
  }
  void note(const std::string& text) const {
    std::printf("note label=%s %s\n", config_.label.c_str(), text.c_str());
    std::fflush(stdout);
  }

  double elapsedSec(MonotonicTime start) {
    return std::chrono::duration<double>(time_.monotonicTime() - start).count();
  }

  // Sequential 1 MiB writes into a new file, then fsync; open to close. MB = 10^6 bytes.
  bool sequential(const std::string& dir) {
    const std::string path = dir + "/seq.dat";
    std::vector<char> buf(1 << 20);
    for (size_t i = 0; i < buf.size(); ++i) {
      buf[i] = static_cast<char>(i * 2654435761u >> 13);  // not zeros, not compressible runs
    }
    ::sync();
    const MonotonicTime start = time_.monotonicTime();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return fail("open " + path);
    }
    for (unsigned i = 0; i < config_.seq_mib; ++i) {
      buf[0] = static_cast<char>(i);
      if (!writeAll(fd, buf.data(), buf.size())) {
        ::close(fd);
        return fail("write " + path);
      }
    }
    if (::fsync(fd) != 0) {
      ::close(fd);
      return fail("fsync " + path);
    }
    ::close(fd);
    const double secs = elapsedSec(start);
    result("seq_mb_s", static_cast<double>(config_.seq_mib) * (1 << 20) / 1e6 / secs);
    ::unlink(path.c_str());
    return true;
  }

  // Appends 4 KiB then fsync, `fsync_samples` times; each write+fsync pair is one sample. With
  // --paired-dir (a directory on the same file system, outside the mount), a native file there
  // gets the same treatment in alternation, first one then the other, so both sets of samples
  // see the same moments of the machine and the disk.
  bool fsyncLatency(const std::string& dir) {
    const std::string path = dir + "/fsync.dat";
    const std::string native_path = config_.paired_dir + "/fsync.dat";
    const bool paired = !config_.paired_dir.empty();
    if (paired && ::mkdir(config_.paired_dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return fail("mkdir " + config_.paired_dir);
    }
    std::vector<char> buf(4096, 'f');
    ::sync();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int native_fd =
        paired ? ::open(native_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    auto done = [&] {
      for (int f : {fd, native_fd}) {
        if (f >= 0) {
          ::close(f);
        }
      }
      ::unlink(path.c_str());
      if (paired) {
        ::unlink(native_path.c_str());
      }
    };
    if (fd < 0 || (paired && native_fd < 0)) {
      const bool native_failed = fd >= 0;
      done();
      return fail("open " + (native_failed ? native_path : path));
    }
    std::vector<double> us;
    std::vector<double> native_us;
    us.reserve(config_.fsync_samples);
    native_us.reserve(paired ? config_.fsync_samples : 0);
    auto sample = [&](int f, unsigned i, std::vector<double>* out) {
      const MonotonicTime start = time_.monotonicTime();
      if (::pwrite(f, buf.data(), buf.size(), static_cast<off_t>(i) * 4096) !=
              static_cast<ssize_t>(buf.size()) ||
          ::fsync(f) != 0) {
        return false;
      }
      out->push_back(elapsedSec(start) * 1e6);
      return true;
    };
    for (unsigned i = 0; i < config_.fsync_samples; ++i) {
      std::pair<int, std::vector<double>*> first{fd, &us};
      std::pair<int, std::vector<double>*> second{native_fd, &native_us};
      if (i % 2 == 1) {
        std::swap(first, second);  // each goes first half of the time
      }
      const bool ok = (first.first < 0 || sample(first.first, i, first.second)) &&
                      (second.first < 0 || sample(second.first, i, second.second));
      if (!ok) {
        const int e = errno;
        done();
        errno = e;
        return fail("write+fsync " + path + (paired ? " / " + native_path : ""));
      }
    }
    done();
    reportPercentiles(us, "fsync");
    if (paired) {
      reportPercentiles(native_us, "fsync_paired_native");
    }
    return true;
  }

  // Creates `creates` files of 4 KiB in one new directory: open(O_CREAT|O_EXCL), write, close.
  bool creates(const std::string& dir) {
    const std::string sub = dir + "/creates";
    std::vector<char> buf(4096, 'c');
    ::sync();
    if (::mkdir(sub.c_str(), 0755) != 0) {
      return fail("mkdir " + sub);
    }
    const MonotonicTime start = time_.monotonicTime();
    for (unsigned i = 0; i < config_.creates; ++i) {
      const std::string path = sub + "/f" + std::to_string(i);
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) {
        return fail("create " + path);
      }
      const bool ok = writeAll(fd, buf.data(), buf.size());
      ::close(fd);
      if (!ok) {
        return fail("write " + path);
      }
    }
    result("creates_per_s", config_.creates / elapsedSec(start));
    return true;
  }

  // `tar -xf` as a child into a new directory: the time to its exit, then that plus sync(2).
  bool untar(const std::string& dir) {
    const std::string sub = dir + "/untar";
    ::sync();
    if (::mkdir(sub.c_str(), 0755) != 0) {
      return fail("mkdir " + sub);
    }
    const char* argv[] = {"tar", "-C", sub.c_str(), "-xf", config_.tar_file.c_str(), nullptr};
    const MonotonicTime start = time_.monotonicTime();
    pid_t pid = 0;
    if (posix_spawnp(&pid, "tar", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
      return fail("spawn tar");
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const double tar_secs = elapsedSec(start);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return fail("tar -xf " + config_.tar_file + " failed (status " + std::to_string(status) +
                  ")");
    }
    // sync(2), not syncfs of the mount: a FUSE mount's syncfs does not reach the disk below it.
    ::sync();
    result("untar_s", tar_secs);
    result("untar_sync_s", elapsedSec(start));
    return true;
  }

  // Round trips of 8 bytes over loopback TCP (TCP_NODELAY): the network part of the fsync target
  // as this machine sees it.
  bool loopbackRtt() {
    const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(config_.port + 1));
    const int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(lfd, 1) != 0) {
      if (lfd >= 0) {
        ::close(lfd);
      }
      return fail("rtt listener");
    }
    const unsigned n = config_.rtt_samples;
    std::thread echo([lfd, n] {
      const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        return;
      }
      const int on = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
      char b[8];
      for (unsigned i = 0; i < n; ++i) {
        if (::recv(c, b, sizeof(b), MSG_WAITALL) != sizeof(b) || ::send(c, b, sizeof(b), 0) < 0) {
          break;
        }
      }
      ::close(c);
    });
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::vector<double> us;
    char b[8] = {};
    for (unsigned i = 0; ok && i < n; ++i) {
      const MonotonicTime start = time_.monotonicTime();
      ok = ::send(fd, b, sizeof(b), 0) == sizeof(b) &&
           ::recv(fd, b, sizeof(b), MSG_WAITALL) == sizeof(b);
      us.push_back(elapsedSec(start) * 1e6);
    }
    if (fd >= 0) {
      ::close(fd);
    }
    if (!ok) {
      ::shutdown(lfd, SHUT_RDWR);  // wakes the echo thread if it still waits in accept
    }
    echo.join();
    ::close(lfd);
    if (!ok) {
      return fail("loopback round trips");
    }
    reportPercentiles(us, "rtt");
    return true;
  }

  // Every measurement runs even when one before it failed; each removes its files afterwards
  // (untimed), so the next starts from the same state and no descriptor pile-up carries over
  // (passthrough_ll keeps one per inode until the kernel forgets it).
  bool runAll(const std::string& dir) {
    auto wanted = [&](const char* name) { return config_.only.empty() || config_.only == name; };
    bool ok = true;
    if (wanted("seq")) {
      ok = sequential(dir) && ok;
    }
    if (wanted("fsync")) {
      ok = fsyncLatency(dir) && ok;
    }
    if (wanted("creates")) {
      ok = creates(dir) && ok;
      removeTree(dir + "/creates");
    }
    if (!config_.tar_file.empty() && wanted("untar")) {
      ok = untar(dir) && ok;
      removeTree(dir + "/untar");
    }
    return ok;
  }

  bool fail(const std::string& what) const {
    std::printf("error label=%s what=%s: %s\n", config_.label.c_str(), what.c_str(),
                std::strerror(errno));
    std::fflush(stdout);
    return false;
  }

  static bool writeAll(int fd, const char* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd, p, n);
      if (w < 0) {
        if (errno == EINTR) {
          continue;
        }
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

 private:
  static void removeTree(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  void reportPercentiles(std::vector<double> us, const std::string& prefix) const {
    std::sort(us.begin(), us.end());
    auto at = [&](double q) {
      return us[std::min(us.size() - 1, static_cast<size_t>(q * static_cast<double>(us.size())))];
    };
    result((prefix + "_p50_us").c_str(), at(0.50));
    result((prefix + "_p99_us").c_str(), at(0.99));
  }

  const Config& config_;
  TimeSource& time_;
};

// ---- full reintegration: make-tree, halo-resync, rsync ----

bool isEmptyOrAbsent(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return true;
  }
  return std::filesystem::is_directory(path, ec) && std::filesystem::is_empty(path, ec);
}

// The source tree of the full reintegration and the two ways of copying it (see README.md).
class ResyncBench {
 public:
  ResyncBench(const Config& config, TimeSource& time, Bench& bench)
      : config_(config),
        time_(time),
        bench_(bench),
        src_(config.dir + "/primary"),
        stamp_(config.dir + "/tree.done") {}

  // make-tree: builds (or, with --reuse-tree, keeps) the tree; it stays.
  int makeTree() {
    if (!ensureTree()) {
      return 1;
    }
    built_ = false;  // make-tree's tree is there to stay
    TreeSize size;
    if (!measureTree(src_, &size)) {
      return 1;
    }
    bench_.note("tree=" + src_ + " regular_files=" + std::to_string(size.files) + " bytes=" +
                std::to_string(size.bytes) + " entries=" + std::to_string(size.entries));
    return 0;
  }

  // halo-resync: the product's full reintegration of the tree into an empty directory.
  int haloResync() {
    const std::string copy = config_.dir + "/secondary";
    TreeSize size;
    if (!ensureTree() || !freshCopyDir(copy) || !measureTree(src_, &size) || !prepareCaches()) {
      return finish(copy, false);
    }
    // Events of both services, with the time they came (seconds from the secondary's start).
    std::mutex mu;
    std::condition_variable cv;
    MonotonicTime t0{};
    bool started = false;
    std::map<std::string, double> first_at;  // "<side>:<kind>" -> seconds, first occurrence
    std::vector<std::string> log;            // every event, for a failure's explanation
    int synced = 0;
    bool lost = false;
    auto sink_for = [&](const std::string& side) {
      return [&, side](const ServiceEvent& e) {
        std::lock_guard<std::mutex> lock(mu);
        const double at =
            started ? std::chrono::duration<double>(time_.monotonicTime() - t0).count() : 0.0;
        first_at.emplace(side + ":" + e.kind, at);
        if (e.kind != "progress") {
          char when[32];
          std::snprintf(when, sizeof when, "%.3f", at);
          log.push_back(side + " " + when + " s " + e.kind + ": " + e.message);
        }
        if (e.kind == "synced") {
          ++synced;
        } else if (e.kind == "lost") {
          lost = true;
        }
        cv.notify_all();
      };
    };
    auto options = [&](const std::string& dir, const std::string& local, const std::string& peer) {
      ServiceOptions o;
      ReplicatedDir d;
      d.dir = dir;
      o.dirs.push_back(d);
      o.link.module_id = 1;
      o.local_addr = local;
      o.peer_addr = peer;
      o.port = config_.port;
      o.sync_on_fsync = config_.peer_sync;
      return o;
    };
    auto p =
        PrimaryService::start(options(src_, "127.0.0.1", "127.0.0.2"), time_, sink_for("primary"));
    if (!p.ok()) {
      error("primary: " + p.status().message());
      return finish(copy, false);
    }
    if (!prefault()) {
      (void)(*p)->stop();
      p->reset();
      return finish(copy, false);
    }
    rusage ru0{};
    ::getrusage(RUSAGE_SELF, &ru0);
    {
      std::lock_guard<std::mutex> lock(mu);
      t0 = time_.monotonicTime();
      started = true;
    }
    auto sec = SecondaryService::start(options(copy, "127.0.0.2", "127.0.0.1"), time_,
                                       sink_for("secondary"));
    if (!sec.ok()) {
      error("secondary: " + sec.status().message());
      (void)(*p)->stop();
      p->reset();
      return finish(copy, false);
    }
    bool ok = true;
    double copy_s = 0;
    {
      const auto deadline = t0 + std::chrono::seconds(config_.timeout_s);
      const auto every =
          std::chrono::milliseconds(config_.progress_ms > 0 ? config_.progress_ms : 1000);
      std::unique_lock<std::mutex> lock(mu);
      while (synced < 2 && !lost && time_.monotonicTime() < deadline) {
        cv.wait_for(lock, every, [&] { return synced >= 2 || lost; });
        if (config_.progress_ms > 0 && synced < 2 && !lost) {
          lock.unlock();
          progressLine(**p, t0);
          lock.lock();
        }
      }
      copy_s = bench_.elapsedSec(t0);
      if (synced < 2) {
        ok = false;
        std::printf("error label=%s what=%s after %.1f s\n", config_.label.c_str(),
                    lost ? "the replication link was lost"
                         : "the reintegration did not end within --timeout-s",
                    copy_s);
        for (const auto& l : log) {
          bench_.note("event=\"" + l + "\"");
        }
      }
    }
    const nlohmann::json status = (*p)->status();
    if (ok) {
      rusage ru1{};
      ::getrusage(RUSAGE_SELF, &ru1);  // up to the end of the copy, as rsync's below
      ::sync();                        // the secondary's copy on its disk, as rsync's below
      const double sync_s = bench_.elapsedSec(t0);
      const auto& rei =
          status.contains("reintegration") ? status["reintegration"] : nlohmann::json{};
      bench_.result("resync_seconds", copy_s);
      bench_.result("resync_sync_seconds", sync_s);
      bench_.result("resync_mb_s", static_cast<double>(size.bytes) / 1e6 / copy_s);
      bench_.result("tree_bytes", static_cast<double>(size.bytes));
      bench_.result("tree_files", static_cast<double>(size.files));
      bench_.result("bytes_copied", static_cast<double>(bytesOf(rei, "bytes_copied")));
      bench_.result("bytes_hashed", static_cast<double>(bytesOf(rei, "bytes_hashed")));
      bench_.result("bytes_sent", static_cast<double>(bytesOf(status, "bytes_sent")));
      bench_.result("cpu_user_s", seconds(ru1.ru_utime) - seconds(ru0.ru_utime));
      bench_.result("cpu_sys_s", seconds(ru1.ru_stime) - seconds(ru0.ru_stime));
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& [key, metric] : std::vector<std::pair<std::string, std::string>>{
               {"primary:connected", "connected_s"},
               {"primary:synced", "primary_synced_s"},
               {"secondary:synced", "secondary_synced_s"}}) {
        if (auto it = first_at.find(key); it != first_at.end()) {
          bench_.result(metric.c_str(), it->second);
        }
      }
      for (const auto& l : log) {
        if (l.find(" log: Reintegration of the secondary begins") != std::string::npos) {
          bench_.result("walk_begins_s", std::stod(l.substr(l.find(' ') + 1)));
        }
      }
      if (bytesOf(rei, "bytes_copied") != size.bytes) {
        bench_.note("bytes_copied=" + std::to_string(bytesOf(rei, "bytes_copied")) +
                    " differs from the tree's " + std::to_string(size.bytes) + " bytes");
      }
    }
    if (Status u = (*p)->stop(); !u.ok()) {
      bench_.note("unmount=\"" + u.message() + "\"");
    }
    sec->reset();  // the applier closes its files before the comparison
    p->reset();
    return finish(copy, ok);
  }

  // rsync: the reference copy into an empty directory, timed to rsync's exit.
  int rsync() {
    const std::string copy = config_.dir + "/rsync";
    TreeSize size;
    if (!ensureTree() || !freshCopyDir(copy) || !measureTree(src_, &size) || !prepareCaches()) {
      return finish(copy, false);
    }
    if (!prefault()) {
      return finish(copy, false);
    }
    const std::vector<std::string> args = {config_.rsync, "-a", src_ + "/", copy + "/"};
    int status = 0;
    rusage ru{};
    std::string why;
    const MonotonicTime t0 = time_.monotonicTime();
    const bool ran =
        spawnAndWait(time_, args, std::chrono::seconds(config_.timeout_s), &status, &ru, &why);
    const double copy_s = bench_.elapsedSec(t0);
    if (!ran || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::printf("error label=%s what=%s\n", config_.label.c_str(),
                  (ran ? "rsync -a: " + describeStatus(status) : why).c_str());
      return finish(copy, false);
    }
    ::sync();
    const double sync_s = bench_.elapsedSec(t0);
    bench_.result("resync_seconds", copy_s);
    bench_.result("resync_sync_seconds", sync_s);
    bench_.result("resync_mb_s", static_cast<double>(size.bytes) / 1e6 / copy_s);
    bench_.result("tree_bytes", static_cast<double>(size.bytes));
    bench_.result("tree_files", static_cast<double>(size.files));
    bench_.result("cpu_user_s", seconds(ru.ru_utime));
    bench_.result("cpu_sys_s", seconds(ru.ru_stime));
    return finish(copy, true);
  }

 private:
  struct TreeSize {
    uint64_t files = 0;
    uint64_t bytes = 0;
    uint64_t entries = 0;
  };

  // An `error` line without errno's text (for failures that carry their own message).
  bool error(const std::string& what) const {
    std::printf("error label=%s what=%s\n", config_.label.c_str(), what.c_str());
    std::fflush(stdout);
    return false;
  }

  static uint64_t bytesOf(const nlohmann::json& j, const char* key) {
    return j.is_object() && j.contains(key) ? j[key].get<uint64_t>() : 0;
  }

  std::string stampText() const {
    return "files=" + std::to_string(config_.tree_files) +
           " mib=" + std::to_string(config_.tree_file_mib) + " source=" + config_.tree_source +
           "\n";
  }

  // The tree in --dir/primary: kept when --reuse-tree and its stamp matches, else (re)built.
  bool ensureTree() {
    std::string stamp;
    {
      std::ifstream in(stamp_);
      stamp.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    if (config_.reuse_tree && stamp == stampText()) {
      bench_.note("tree=reused");
      return true;
    }
    if (stamp.empty() && !isEmptyOrAbsent(src_)) {
      errno = ENOTEMPTY;
      return bench_.fail(src_ + " holds files this program did not put there (no " + stamp_ +
                         "); remove it or use another --dir");
    }
    removeAll(stamp_);
    removeAll(src_);
    return buildTree();
  }

  bool buildTree() {
    const MonotonicTime start = time_.monotonicTime();
    std::error_code ec;
    std::filesystem::create_directories(src_ + "/data", ec);
    if (ec) {
      errno = ec.value();
      return bench_.fail("mkdir " + src_ + "/data");
    }
    built_ = true;
    // Two writers (the machine has 2 CPUs); 1 MiB writes of pseudo-random data.
    std::atomic<unsigned> next{0};
    std::atomic<bool> failed{false};
    std::string failure;
    std::mutex failure_mu;
    auto writer = [&] {
      std::vector<uint64_t> buf((1 << 20) / sizeof(uint64_t));
      for (unsigned i = next++; i < config_.tree_files && !failed; i = next++) {
        char name[32];
        std::snprintf(name, sizeof name, "/data/big-%02u.bin", i);
        const std::string path = src_ + name;
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        uint64_t x = 0x5eed0000ull + i;
        bool ok = fd >= 0;
        for (unsigned m = 0; ok && m < config_.tree_file_mib; ++m) {
          for (auto& w : buf) {
            w = splitmix64(x);
          }
          ok = Bench::writeAll(fd, reinterpret_cast<const char*>(buf.data()),
                               buf.size() * sizeof(uint64_t));
        }
        if (fd >= 0) {
          ok = ::close(fd) == 0 && ok;
        }
        if (!ok) {
          std::lock_guard<std::mutex> lock(failure_mu);
          failure = "write " + path + ": " + std::strerror(errno);
          failed = true;
        }
      }
    };
    std::thread a(writer);
    std::thread b(writer);
    a.join();
    b.join();
    if (failed) {
      return error(failure);
    }
    if (!config_.tree_source.empty()) {
      int status = 0;
      rusage ru{};
      std::string why;
      if (!spawnAndWait(time_, {"cp", "-a", config_.tree_source, src_ + "/source"},
                        std::chrono::seconds(config_.timeout_s), &status, &ru, &why) ||
          !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return error("cp -a " + config_.tree_source + ": " +
                     (why.empty() ? describeStatus(status) : why));
      }
    }
    ::sync();
    std::ofstream out(stamp_);
    out << stampText();
    out.close();
    if (!out) {
      return bench_.fail("write " + stamp_);
    }
    char text[64];
    std::snprintf(text, sizeof text, "tree=built build_s=%.1f", bench_.elapsedSec(start));
    bench_.note(text);
    return true;
  }

  bool freshCopyDir(const std::string& copy) {
    if (!isEmptyOrAbsent(copy)) {
      bench_.note("removed_previous_copy=" + copy);
      removeAll(copy);
    }
    if (::mkdir(copy.c_str(), 0755) != 0 && errno != EEXIST) {
      return bench_.fail("mkdir " + copy);
    }
    return true;
  }

  bool measureTree(const std::string& root, TreeSize* out) {
    WalkOptions o;
    o.block_digests = false;
    auto walk = walkTree(root, o);
    if (!walk.ok()) {
      return error("walk " + root + ": " + walk.status().message());
    }
    for (const auto& e : walk->manifest.entries) {
      ++out->entries;
      if (S_ISREG(e.type_and_mode)) {
        ++out->files;
        out->bytes += e.size;
      }
    }
    return true;
  }

  // The same cache state before each copy: warm (every file of the tree read once, so both
  // copies read from the page cache) or, with --drop-caches, cold (machine-wide drop).
  bool prepareCaches() {
    ::sync();
    const MonotonicTime start = time_.monotonicTime();
    if (config_.drop_caches) {
      const int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
      const bool ok = fd >= 0 && ::write(fd, "3\n", 2) == 2;
      if (fd >= 0) {
        ::close(fd);
      }
      if (!ok) {
        return bench_.fail("write 3 to /proc/sys/vm/drop_caches");
      }
      bench_.note("caches=cold (sync, then drop_caches=3, machine-wide)");
      return true;
    }
    std::vector<char> buf(1 << 20);
    uint64_t bytes = 0;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(src_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec) || it->is_symlink(ec)) {
        continue;
      }
      const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME);
      if (fd < 0) {
        continue;
      }
      ssize_t n = 0;
      while ((n = ::read(fd, buf.data(), buf.size())) > 0) {
        bytes += static_cast<uint64_t>(n);
      }
      ::close(fd);
    }
    if (ec) {
      errno = ec.value();
      return bench_.fail("reading " + src_ + " to warm the cache");
    }
    char text[128];
    std::snprintf(text, sizeof text, "caches=warm (the tree read once: %.0f MB in %.1f s)",
                  static_cast<double>(bytes) / 1e6, bench_.elapsedSec(start));
    bench_.note(text);
    return true;
  }

  // Memory the copy is about to fill, faulted in and freed again just before timing. On a VM
  // whose free memory goes back to the host (free page reporting, DAMON), touching it again
  // costs the host's page faults: several times the copy itself (see README.md).
  bool prefault() {
    if (config_.prefault_mib == 0) {
      return true;
    }
    const MonotonicTime start = time_.monotonicTime();
    const size_t size = size_t{config_.prefault_mib} << 20;
    void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      return bench_.fail("prefault mmap " + std::to_string(config_.prefault_mib) + " MiB");
    }
    ::munmap(m, size);
    char text[96];
    std::snprintf(text, sizeof text, "prefault_mib=%u prefault_s=%.1f", config_.prefault_mib,
                  bench_.elapsedSec(start));
    bench_.note(text);
    return true;
  }

  void progressLine(PrimaryService& p, MonotonicTime t0) {
    const nlohmann::json s = p.status();
    const auto& r = s.contains("reintegration") ? s["reintegration"] : nlohmann::json{};
    std::printf("progress label=%s t=%.2f phase=%s files_done=%" PRIu64 " bytes_done=%" PRIu64
                " bytes_copied=%" PRIu64 " bytes_sent=%" PRIu64 "\n",
                config_.label.c_str(), bench_.elapsedSec(t0),
                r.is_object() ? r.value("phase", std::string("-")).c_str() : "-",
                bytesOf(r, "files_done"), bytesOf(r, "bytes_done"), bytesOf(r, "bytes_copied"),
                bytesOf(s, "bytes_sent"));
    std::fflush(stdout);
  }

  // The copy compared with the source (untimed), then the copy removed and, when this run built
  // it, the tree, unless --keep-copy / --keep-tree.
  int finish(const std::string& copy, bool ok) {
    if (ok && config_.verify) {
      ok = verifyCopy(copy);
    }
    if (!config_.keep_copy) {
      removeAll(copy);
    }
    if (built_ && !config_.keep_tree) {
      removeAll(stamp_);
      removeAll(src_);
    }
    return ok ? 0 : 1;
  }

  bool verifyCopy(const std::string& copy) {
    const MonotonicTime start = time_.monotonicTime();
    WalkOptions o;
    o.block_size = 1 << 20;
    o.threads = 2;
    auto a = walkTree(src_, o);
    auto b = walkTree(copy, o);
    if (!a.ok() || !b.ok()) {
      return error("verify: walk: " + (a.ok() ? b.status() : a.status()).message());
    }
    auto diffs = diffTrees(a->manifest, b->manifest, DiffOptions{});
    if (!diffs.ok()) {
      return error("verify: " + diffs.status().message());
    }
    bench_.result("verify_entries", static_cast<double>(a->manifest.entries.size()));
    bench_.result("verify_differences", static_cast<double>(diffs->size()));
    char text[96];
    std::snprintf(text, sizeof text, "verify_s=%.1f", bench_.elapsedSec(start));
    bench_.note(text);
    size_t shown = 0;
    for (const auto& d : *diffs) {
      if (++shown > 10) {
        break;
      }
      std::printf("error label=%s what=the copy differs: %s\n", config_.label.c_str(),
                  describeDiff(d).c_str());
    }
    if (!diffs->empty()) {
      std::printf("error label=%s what=the copy differs from the source in %zu entries\n",
                  config_.label.c_str(), diffs->size());
    }
    std::fflush(stdout);
    return diffs->empty();
  }

  static void removeAll(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  const Config& config_;
  TimeSource& time_;
  Bench& bench_;
  const std::string src_;
  const std::string stamp_;
  bool built_ = false;  // this run built the tree
};

int run(const Config& config) {
  RealTimeSource time;
  Bench bench(config, time);
  std::string why;
  if (!enterPrivateNamespaces(why)) {
    std::printf("error label=%s what=%s\n", config.label.c_str(), why.c_str());
    return 1;
  }
  if (config.mode == "plain") {
    return bench.runAll(config.dir) ? 0 : 1;
  }
  if (config.mode == "make-tree" || config.mode == "halo-resync" || config.mode == "rsync") {
    ResyncBench r(config, time, bench);
    return config.mode == "make-tree" ? r.makeTree()
           : config.mode == "rsync"   ? r.rsync()
                                      : r.haloResync();
  }

  const std::string primary = config.dir + "/primary";
  const std::string secondary = config.dir + "/secondary";
  if (::mkdir(primary.c_str(), 0755) != 0 && errno != EEXIST) {
    bench.fail("mkdir " + primary);
    return 1;
  }
  if (config.mode == "halo-fuse") {
    AckSink ack_sink;
    auto f = FuseFs::mount({primary, nullptr, false, 8}, ack_sink);
    if (!f.ok()) {
      std::printf("error label=%s what=FUSE mount: %s\n", config.label.c_str(),
                  f.status().message().c_str());
      return 1;
    }
    bool ok = bench.runAll(primary);
    ::sync();
    if (Status u = (*f)->unmount(); !u.ok()) {
      bench.note("unmount=\"" + u.message() + "\"");
    }
    return ok ? 0 : 1;
  }
  if (config.mode != "halo-repl") {
    std::printf("error label=%s what=unknown mode %s\n", config.label.c_str(), config.mode.c_str());
    return 1;
  }
  if (::mkdir(secondary.c_str(), 0755) != 0 && errno != EEXIST) {
    bench.fail("mkdir " + secondary);
    return 1;
  }
  if (!bench.loopbackRtt()) {
    return 1;
  }
  // The product's two replication services, as halo-rfs runs them, over loopback.
  auto options = [&](const std::string& dir, const std::string& local, const std::string& peer) {
    ServiceOptions o;
    ReplicatedDir d;
    d.dir = dir;
    o.dirs.push_back(d);
    o.link.module_id = 1;
    o.local_addr = local;
    o.peer_addr = peer;
    o.port = config.port;
    o.sync_on_fsync = config.peer_sync;
    // As halo-rfs keeps them: the journal (change log) and the activity log beside the data.
    o.journal = dir + ".journal.db";
    o.activity_log = dir + ".activity.db";
    return o;
  };
  std::mutex mu;
  std::condition_variable cv;
  int synced = 0;
  auto sink = [&](const ServiceEvent& e) {
    if (e.kind == "synced") {
      std::lock_guard<std::mutex> lock(mu);
      ++synced;
      cv.notify_all();
    }
  };
  auto p = PrimaryService::start(options(primary, "127.0.0.1", "127.0.0.2"), time, sink);
  if (!p.ok()) {
    std::printf("error label=%s what=primary: %s\n", config.label.c_str(),
                p.status().message().c_str());
    return 1;
  }
  auto sec = SecondaryService::start(options(secondary, "127.0.0.2", "127.0.0.1"), time, sink);
  if (!sec.ok()) {
    std::printf("error label=%s what=secondary: %s\n", config.label.c_str(),
                sec.status().message().c_str());
    return 1;
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return synced >= 2; })) {
      std::printf("error label=%s what=the secondary did not synchronise\n", config.label.c_str());
      return 1;
    }
  }
  bool ok = bench.runAll(primary);
  ::sync();
  const auto status = (*p)->status();
  if (!status.value("synced", false)) {
    std::printf("error label=%s what=replication link lost\n", config.label.c_str());
    ok = false;
  }
  if (Status u = (*p)->stop(); !u.ok()) {
    bench.note("unmount=\"" + u.message() + "\"");
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace halo::rfs::bench

int main(int argc, char** argv) {
  halo::rfs::tuneAllocatorForRecords();  // as halo-rfs does
  halo::rfs::bench::Config c;
  CLI::App app{"halo-rfs-bench: file-system measurements for bench/rfs/run.sh"};
  app.add_option("--mode", c.mode,
                 "plain | halo-fuse | halo-repl | make-tree | halo-resync | rsync")
      ->check(
          CLI::IsMember({"plain", "halo-fuse", "halo-repl", "make-tree", "halo-resync", "rsync"}));
  app.add_option("--dir", c.dir, "directory to measure in (halo modes: holds primary/, secondary/)")
      ->required();
  app.add_option("--paired-dir", c.paired_dir,
                 "fsync: also measure a native file in this directory (same file system, outside "
                 "the mount), alternating sample by sample");
  app.add_option("--label", c.label, "name printed on every line (default: the mode)");
  app.add_option("--tar", c.tar_file, "tar file to extract for the untar measurement");
  app.add_option("--seq-mib", c.seq_mib, "MiB written by the sequential measurement")
      ->capture_default_str();
  app.add_option("--fsync-samples", c.fsync_samples, "4 KiB write+fsync samples")
      ->capture_default_str();
  app.add_option("--creates", c.creates, "4 KiB files created")->capture_default_str();
  app.add_option("--rtt-samples", c.rtt_samples, "halo-repl: loopback TCP round trips")
      ->capture_default_str();
  app.add_option("--measure", c.only, "run one measurement only (profiling)")
      ->check(CLI::IsMember({"seq", "fsync", "creates", "untar"}));
  app.add_flag("--peer-sync", c.peer_sync, "halo-repl: the secondary fsyncs too (async=none)");
  app.add_option("--port", c.port, "halo-repl: loopback port (private namespace)")
      ->capture_default_str();
  app.add_option("--tree-files", c.tree_files, "resync tree: files of pseudo-random data")
      ->capture_default_str();
  app.add_option("--tree-file-mib", c.tree_file_mib, "resync tree: MiB per such file")
      ->capture_default_str();
  app.add_option("--tree-source", c.tree_source,
                 "resync tree: a real tree copied in with cp -a (\"\" for none)")
      ->capture_default_str();
  app.add_flag("--reuse-tree", c.reuse_tree,
               "resync: use DIR/primary as it is when DIR/tree.done matches the tree options");
  app.add_flag("--keep-tree", c.keep_tree, "resync: keep a tree this run built");
  app.add_flag("--keep-copy", c.keep_copy, "resync: keep DIR/secondary or DIR/rsync");
  app.add_flag("--drop-caches", c.drop_caches,
               "resync: cold caches (sync; drop_caches=3, machine-wide) instead of warm");
  app.add_flag("!--no-verify", c.verify, "resync: do not compare the copy with the source");
  app.add_option("--timeout-s", c.timeout_s, "resync: bound on the copy and on tree building")
      ->capture_default_str();
  app.add_option("--progress-ms", c.progress_ms,
                 "halo-resync: print the primary's progress this often (0: never)")
      ->capture_default_str();
  app.add_option("--rsync", c.rsync, "rsync: the program")->capture_default_str();
  app.add_option("--prefault-mib", c.prefault_mib,
                 "resync: fault in then free this much memory just before timing (VMs)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (c.label.empty()) {
    c.label = c.mode;
  }
  if (c.seq_mib == 0 || c.fsync_samples == 0 || c.creates == 0 || c.rtt_samples == 0 ||
      c.timeout_s == 0 || c.tree_file_mib == 0) {
    std::fprintf(stderr, "sizes must be positive\n");
    return 2;
  }
  return halo::rfs::bench::run(c);
}
