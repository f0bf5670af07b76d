// halo rfsverify: asks the module's replication process to compare its directories with the
// peer's (both walked with block digests) and prints the differences.
#include <iostream>

#include "cli/commands.h"
#include "sys/unix_socket.h"

namespace halo::cli {

int rfsVerify(Cli& cli) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  proto::Request req{"verify", cli.module, cli.identity, {}};
  // Walking two large trees takes as long as reading them.
  auto line =
      sys::requestLine(cli.paths.rfsSocket(cli.module), proto::encodeRequest(req), std::nullopt);
  if (!line.ok()) {
    return cli.fail("module " + cli.module +
                    " has no replication process running on this node (it runs while the module "
                    "is PRIM, ALONE or SECOND and replicates directories)");
  }
  auto reply = proto::decodeReply(*line);
  if (!reply.ok()) {
    return cli.fail(reply.status());
  }
  if (!reply->ok()) {
    return cli.fail(reply->message, reply->exit_code);
  }
  const auto& diffs = reply->data["differences"];
  for (const auto& d : diffs) {
    std::cout << d.value("dir", "") << ": " << d.value("line", "") << "\n";
  }
  const uint64_t entries = reply->data.value("entries", uint64_t{0});
  if (diffs.empty()) {
    std::cout << cli.module << ": replicated directories identical on both nodes (" << entries
              << " entries compared)\n";
    return kExitOk;
  }
  std::cout << cli.module << ": " << diffs.size() << " difference" << (diffs.size() > 1 ? "s" : "")
            << " (" << entries
            << " entries compared); with writes going on, run it again to tell lasting "
               "differences from passing ones\n";
  return 1;
}

}  // namespace halo::cli
