// halo-module: runs one started module. Spawned and supervised by halod; not run by hand.
//   halo-module --module AM [--recover]
// fd 3, when open, is a readiness pipe: "OK\n" once the module socket listens and the start (or
// recovery) began, or "ERR <message>\n" when the module cannot start.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "module/runtime.h"
#include "module/tools.h"
#include "sys/event_loop.h"
#include "sys/process.h"

namespace {

int usage() {
  fprintf(stderr,
          "usage: halo-module --module NAME [--recover | --verb prim|second|primforce]\n"
          "Runs one started module; halod starts it (use: halo start -m NAME).\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  halo::module::RuntimeOptions opts;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--module") == 0 && i + 1 < argc) {
      opts.module = argv[++i];
    } else if (std::strcmp(argv[i], "--verb") == 0 && i + 1 < argc) {
      opts.start_verb = argv[++i];
    } else if (std::strcmp(argv[i], "--recover") == 0) {
      opts.recover = true;
    } else {
      return usage();
    }
  }
  if (opts.module.empty()) {
    return usage();
  }
  signal(SIGPIPE, SIG_IGN);
  opts.paths = halo::Paths::fromEnvironment();
  const std::string cli = halo::module::findTool("halo");
  opts.cli_dir = cli.empty() ? "" : cli.substr(0, cli.rfind('/'));
  opts.prefix = halo::module::installPrefix();

  halo::RealTimeSource time;
  auto loop = halo::sys::EventLoop::create(time);
  if (!loop.ok()) {
    halo::sys::reportReadiness("ERR " + loop.status().message());
    return 2;
  }
  auto rt = halo::module::Runtime::create(opts, **loop);
  if (!rt.ok()) {
    halo::sys::reportReadiness("ERR " + rt.status().message());
    return 2;
  }
  halo::module::Runtime& runtime = **rt;
  auto sig = (*loop)->watchSignals({SIGTERM, SIGINT, SIGHUP}, [&runtime](int s) {
    if (s != SIGHUP) {
      runtime.requestStop(std::string("signal ") + strsignal(s));
    }
  });
  if (!sig.ok()) {
    halo::sys::reportReadiness("ERR " + sig.message());
    return 2;
  }
  halo::Status begun = runtime.begin();
  if (!begun.ok()) {
    halo::sys::reportReadiness("ERR " + begun.message());
    return 2;
  }
  halo::sys::reportReadiness("OK");
  halo::Status ran = (*loop)->run();
  if (!ran.ok()) {
    fprintf(stderr, "halo-module %s: %s\n", opts.module.c_str(), ran.message().c_str());
    return 1;
  }
  if (runtime.exitCode() == 0) {
    unlink(opts.paths.modulePidFile(opts.module).c_str());
  }
  return runtime.exitCode();
}
