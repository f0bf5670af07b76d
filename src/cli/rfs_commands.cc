// halo rfsverify: asks the module's replication process to compare its directories with the
// peer's (both walked with block digests) and prints the differences. halo rfsdiff: what a
// reintegration would copy now. halo secondforce -d DATE: a secondary start that copies only
// what was modified since DATE.
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "base/strings.h"
#include "cli/commands.h"
#include "sys/files.h"
#include "sys/unix_socket.h"

namespace halo::cli {

namespace {

// One request to the module's replication process, waiting as long as it takes (it walks trees).
Result<proto::Reply> askReplication(Cli& cli, const std::string& cmd) {
  HALO_RETURN_IF_ERROR(cli.requireModule());
  proto::Request req{cmd, cli.module, cli.identity, {}};
  auto line =
      sys::requestLine(cli.paths.rfsSocket(cli.module), proto::encodeRequest(req), std::nullopt);
  if (!line.ok()) {
    return failedPrecondition("module " + cli.module +
                              " has no replication process running on this node (it runs while "
                              "the module is PRIM, ALONE or SECOND and replicates directories)");
  }
  return proto::decodeReply(*line);
}

// "YYYY-MM-DD[Z]", "YYYY-MM-DD hh:mm:ss[Z]", "YYYY-MM-DDThh:mm:ss[Z]": local time unless Z.
std::optional<int64_t> parseDate(std::string text) {
  bool utc = false;
  if (!text.empty() && (text.back() == 'Z' || text.back() == 'z')) {
    utc = true;
    text.pop_back();
  }
  std::tm tm{};
  int n = 0;
  const char* formats[] = {"%d-%d-%d%n", "%d-%d-%d %d:%d:%d%n", "%d-%d-%dT%d:%d:%d%n"};
  bool parsed = false;
  for (const char* f : formats) {
    tm = {};
    n = 0;
    const int got = std::sscanf(text.c_str(), f, &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                                &tm.tm_min, &tm.tm_sec, &n);
    if ((got == 3 || got == 6) && static_cast<size_t>(n) == text.size()) {
      parsed = true;
      break;
    }
  }
  if (!parsed || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_isdst = -1;
  const std::time_t t = utc ? timegm(&tm) : std::mktime(&tm);
  return t == static_cast<std::time_t>(-1) ? std::nullopt : std::optional<int64_t>(t);
}

}  // namespace

int rfsDiff(Cli& cli) {
  auto reply = askReplication(cli, "diff");
  if (!reply.ok()) {
    return cli.fail(reply.status());
  }
  if (!reply->ok()) {
    return cli.fail(reply->message, reply->exit_code);
  }
  const auto& d = reply->data;
  const uint64_t files = d.value("files", uint64_t{0});
  const uint64_t bytes = d.value("bytes", uint64_t{0});
  if (d.value("mode", "") == "changes") {
    char base[32];
    std::snprintf(base, sizeof base, "%" PRIx64, d.value("base", uint64_t{0}));
    std::cout << cli.module << ": a secondary joining now gets the changes since sync point "
              << base << ": " << d.value("paths", uint64_t{0}) << " paths recorded ("
              << d.value("directories", uint64_t{0})
              << (d.value("directories", uint64_t{0}) == 1 ? " directory" : " directories")
              << " to list again)\n";
  } else {
    std::cout << cli.module << ": a secondary joining now is compared file by file ("
              << d.value("why", "") << ")\n";
  }
  const double rate = d.value("rate_bytes_s", 0.0);
  const double assumed = rate > 0 ? rate : 100e6;
  char eta[64];
  std::snprintf(eta, sizeof eta, "%.1f s", static_cast<double>(bytes) / assumed);
  std::cout << cli.module << ": at most " << files << " files, " << humanBytes(double(bytes))
            << " to copy; about " << eta
            << (rate > 0 ? " at the last reintegration's rate" : " at 100 MB/s") << "\n";
  return kExitOk;
}

int secondForce(Cli& cli, const std::string& date) {
  Status s = cli.requireModule();
  if (!s.ok()) {
    return cli.fail(s);
  }
  auto since = parseDate(date);
  if (!since) {
    return cli.fail("secondforce -d '" + date +
                        "': expected YYYY-MM-DD, \"YYYY-MM-DD hh:mm:ss\" or YYYY-MM-DDThh:mm:ss "
                        "(local time; a final Z for UTC)",
                    kExitUsage);
  }
  // One-shot and persistent, like fullsync: the next reintegration reads and removes it.
  s = sys::writeFileAtomic(cli.paths.moduleVarDir(cli.module) + "/secondforce",
                           std::to_string(*since) + "\n");
  if (!s.ok()) {
    return cli.fail(s);
  }
  return controlStart(cli, "second");
}

int rfsVerify(Cli& cli) {
  auto reply = askReplication(cli, "verify");
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
