// halo-rfs: the replication process of one mirror module on one node (DESIGN 2, 6). Separate from
// the module runtime so that a runtime restart never breaks the application's I/O.
//
//   halo-rfs primary   --dir D --peer ADDR --port P --module-id N [--send-timeout MS]
//   halo-rfs secondary --dir D --listen ADDR --port P --module-id N [--sync]
//
// primary: connects to the secondary (or runs alone when it cannot), then mounts the FUSE
// interception over D; every operation goes to the peer in order. secondary: applies what the
// primary sends to D (--sync: fsync there too, async="none"). Both run until SIGTERM or SIGINT;
// the primary then unmounts. Progress and problems are one line each on stdout
// ("mounted ...", "link lost: ...") for the runtime to log.
//
// Not yet (issue 5): reintegration, notreplicated from the configuration, TLS, nbremconn.

#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "rfs/applier.h"
#include "rfs/fuse_fs.h"
#include "rfs/stream_link.h"

namespace {

using halo::rfs::Op;

// The primary without a peer: operations are applied locally and not sent anywhere.
class AloneSink : public halo::rfs::OpSink {
 public:
  uint64_t submit(Op op) override { return op.seq = ++seq_; }
  void waitAcked(uint64_t) override {}

 private:
  uint64_t seq_ = 0;  // only called under the file system's ordering lock
};

int usage() {
  fprintf(stderr,
          "usage: halo-rfs primary --dir D --peer ADDR --port P --module-id N "
          "[--send-timeout MS]\n"
          "       halo-rfs secondary --dir D --listen ADDR --port P --module-id N [--sync]\n"
          "The replication process of a mirror module; the module runtime starts it.\n");
  return 2;
}

// A whole non-negative decimal number, or -1.
int64_t number(const std::string& text) {
  int64_t v = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && end == text.data() + text.size() && v >= 0 ? v : -1;
}

void say(const std::string& line) {
  printf("%s\n", line.c_str());
  fflush(stdout);
}

// Blocks the termination signals before any thread starts, then waits for one.
sigset_t blockTermination() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int runPrimary(const std::map<std::string, std::string>& args, const sigset_t& term) {
  halo::RealTimeSource time;
  halo::rfs::SenderOptions so;
  so.peer_addr = args.at("--peer");
  so.port = static_cast<int>(number(args.at("--port")));
  so.module_id = static_cast<uint16_t>(number(args.at("--module-id")));
  if (args.count("--send-timeout") != 0) {
    so.send_timeout = halo::Millis(number(args.at("--send-timeout")));
  }
  AloneSink alone;
  std::unique_ptr<halo::rfs::StreamSender> sender;
  auto connected = halo::rfs::StreamSender::connect(so, time);
  if (connected.ok()) {
    sender = std::move(*connected);
    sender->setLostHandler([](const std::string& why) { say("link lost: " + why); });
    say("link up to " + so.peer_addr + ":" + std::to_string(so.port));
  } else {
    say("alone: " + connected.status().message());
  }
  halo::rfs::OpSink& sink = sender ? static_cast<halo::rfs::OpSink&>(*sender) : alone;
  auto fs = halo::rfs::FuseFs::mount({args.at("--dir"), nullptr, false, 8}, sink);
  if (!fs.ok()) {
    say("error: " + fs.status().message());
    return 1;
  }
  say("mounted " + args.at("--dir"));
  int sig = 0;
  sigwait(&term, &sig);
  halo::Status s = (*fs)->unmount();
  say(s.ok() ? "unmounted" : "error: " + s.message());
  return s.ok() ? 0 : 1;
}

int runSecondary(const std::map<std::string, std::string>& args, const sigset_t& term) {
  halo::rfs::ApplierOptions ao;
  ao.sync_on_fsync = args.count("--sync") != 0;
  auto applier = halo::rfs::Applier::open(args.at("--dir"), ao);
  if (!applier.ok()) {
    say("error: " + applier.status().message());
    return 1;
  }
  halo::rfs::ReceiverOptions ro;
  ro.local_addr = args.at("--listen");
  ro.port = static_cast<int>(number(args.at("--port")));
  ro.module_id = static_cast<uint16_t>(number(args.at("--module-id")));
  auto receiver = halo::rfs::StreamReceiver::listen(ro, **applier);
  if (!receiver.ok()) {
    say("error: " + receiver.status().message());
    return 1;
  }
  say("listening on " + ro.local_addr + ":" + std::to_string(ro.port));
  int sig = 0;
  sigwait(&term, &sig);
  say("stopped after operation " + std::to_string((*receiver)->applied()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    return usage();
  }
  const std::string role = argv[1];
  std::map<std::string, std::string> args;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--sync") {
      args[a] = "1";
    } else if (a.rfind("--", 0) == 0 && i + 1 < argc) {
      args[a] = argv[++i];
    } else {
      return usage();
    }
  }
  const char* needed_primary[] = {"--dir", "--peer", "--port", "--module-id"};
  const char* needed_secondary[] = {"--dir", "--listen", "--port", "--module-id"};
  if (role != "primary" && role != "secondary") {
    return usage();
  }
  for (const char* n : role == "primary" ? needed_primary : needed_secondary) {
    if (args.count(n) == 0) {
      fprintf(stderr, "halo-rfs %s: %s is required\n", role.c_str(), n);
      return usage();
    }
  }
  for (const char* n : {"--port", "--module-id", "--send-timeout"}) {
    if (args.count(n) != 0 && number(args.at(n)) < 0) {
      fprintf(stderr, "halo-rfs: %s '%s' is not a number\n", n, args.at(n).c_str());
      return usage();
    }
  }
  signal(SIGPIPE, SIG_IGN);
  const sigset_t term = blockTermination();
  return role == "primary" ? runPrimary(args, term) : runSecondary(args, term);
}
