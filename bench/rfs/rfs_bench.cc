// halo-rfs-bench: measures one file-system path for bench/rfs/run.sh (see README.md there).
//
// Modes:
//   plain       the measurements run in --dir as it is (the native directory, or the mount point
//               of a reference FUSE file system that run.sh mounted);
//   halo-fuse   FuseFs is mounted over --dir/primary with a sink that acknowledges at once;
//   halo-repl   the replication services of halo-rfs over loopback TCP: PrimaryService (FUSE
//               over --dir/primary, hub, session) -> SecondaryService (applier on
//               --dir/secondary), after their initial reintegration (no network).
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
#include <sched.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/time_source.h"
#include "rfs/applier.h"
#include "rfs/fuse_fs.h"
#include "rfs/service.h"

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
  bool peer_sync = false;  // halo-repl: the applier fsyncs on Fsync ops (async="none")
  int port = 5630;         // private network namespace: no clash with the machine
};

// A sink for the FUSE-only mode: numbers each operation and acknowledges it at once.
class AckSink : public OpSink {
 public:
  uint64_t submit(Op /*op*/) override { return ++seq_; }
  void waitAcked(uint64_t /*seq*/) override {}

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

  // Appends 4 KiB then fsync, `fsync_samples` times; each write+fsync pair is one sample.
  bool fsyncLatency(const std::string& dir) {
    const std::string path = dir + "/fsync.dat";
    std::vector<char> buf(4096, 'f');
    ::sync();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return fail("open " + path);
    }
    std::vector<double> us;
    us.reserve(config_.fsync_samples);
    for (unsigned i = 0; i < config_.fsync_samples; ++i) {
      const MonotonicTime start = time_.monotonicTime();
      if (::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(i) * 4096) !=
              static_cast<ssize_t>(buf.size()) ||
          ::fsync(fd) != 0) {
        ::close(fd);
        return fail("write+fsync " + path);
      }
      us.push_back(elapsedSec(start) * 1e6);
    }
    ::close(fd);
    ::unlink(path.c_str());
    reportPercentiles(us, "fsync");
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
    bool ok = sequential(dir);
    ok = fsyncLatency(dir) && ok;
    ok = creates(dir) && ok;
    removeTree(dir + "/creates");
    if (!config_.tar_file.empty()) {
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

 private:
  static void removeTree(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
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

// Private mount and network namespaces, with loopback up. Must run before any thread starts.
bool enterPrivateNamespaces(std::string& why) {
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) {
    why =
        std::string("unshare(CLONE_NEWNS|CLONE_NEWNET): ") + std::strerror(errno) + " (needs root)";
    return false;
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    why = std::string("make / private: ") + std::strerror(errno);
    return false;
  }
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  if (fd >= 0) {
    ::close(fd);
  }
  if (!ok) {
    why = "bringing lo up failed";
  }
  return ok;
}

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
  halo::rfs::bench::Config c;
  CLI::App app{"halo-rfs-bench: file-system measurements for bench/rfs/run.sh"};
  app.add_option("--mode", c.mode, "plain | halo-fuse | halo-repl")
      ->check(CLI::IsMember({"plain", "halo-fuse", "halo-repl"}));
  app.add_option("--dir", c.dir, "directory to measure in (halo modes: holds primary/, secondary/)")
      ->required();
  app.add_option("--label", c.label, "name printed on every line (default: the mode)");
  app.add_option("--tar", c.tar_file, "tar file to extract for the untar measurement");
  app.add_option("--seq-mib", c.seq_mib, "MiB written by the sequential measurement")
      ->capture_default_str();
  app.add_option("--fsync-samples", c.fsync_samples, "4 KiB write+fsync samples")
      ->capture_default_str();
  app.add_option("--creates", c.creates, "4 KiB files created")->capture_default_str();
  app.add_option("--rtt-samples", c.rtt_samples, "halo-repl: loopback TCP round trips")
      ->capture_default_str();
  app.add_flag("--peer-sync", c.peer_sync, "halo-repl: the secondary fsyncs too (async=none)");
  app.add_option("--port", c.port, "halo-repl: loopback port (private namespace)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (c.label.empty()) {
    c.label = c.mode;
  }
  if (c.seq_mib == 0 || c.fsync_samples == 0 || c.creates == 0 || c.rtt_samples == 0) {
    std::fprintf(stderr, "sizes must be positive\n");
    return 2;
  }
  return halo::rfs::bench::run(c);
}
