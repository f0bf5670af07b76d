#pragma once
// The fixture of the replicated-directory tests (rfs_test.cc, rfs_resync_test.cc): the mirror
// template (python3's http.server serving a replicated directory) on two real nodes in their own
// network namespaces; applications write through the primary's FUSE mount, which lives in that
// node's mount namespace (execMounted). Each node has its own copy of the directory under its
// own root (%HALO_ROOT% in the template).

#include <signal.h>

#include <set>
#include <sstream>

#include "harness/mirror_fixture.h"

namespace halo::test {

// Appends numbered records to a replicated file, fsync after each, and only then writes the
// number to an acknowledgement log outside the replicated directory: whatever the log holds was
// acknowledged to the application.
const char* kWriter = R"(import os, sys
data, acked = sys.argv[1], sys.argv[2]
fd = os.open(data, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
ack = open(acked, 'a', buffering=1)
for i in range(1, 10000000):
    os.write(fd, ('record %09d\n' % i).encode())
    os.fsync(fd)
    ack.write('%d\n' % i)
)";

class RfsFixture : public MirrorFixture {
 protected:
  std::string data(const TestNode& n) const { return n.root() + "/var/lib/halo-web"; }

  // Runs a shell command in node n's namespaces (it sees the node's FUSE mount).
  CommandResult onNode(const TestNode& n, const std::string& script,
                       std::chrono::seconds timeout = std::chrono::seconds(120)) {
    return n.execMounted({"sh", "-c", script}, timeout);
  }

  void startWriter(const TestNode& n) {
    std::ofstream(n.root() + "/writer.py") << kWriter;
    auto r =
        onNode(n, "setsid python3 " + n.root() + "/writer.py " + data(n) + "/records.log " +
                      n.root() + "/acked.log > " + n.root() + "/writer.out 2>&1 < /dev/null &");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  // The last record the writer was told is durable (only whole lines count).
  int64_t acked(const TestNode& n) const {
    std::istringstream in(n.readFile(n.root() + "/acked.log"));
    int64_t last = 0;
    for (std::string line; std::getline(in, line);) {
      if (!in.eof()) {
        last = std::atoll(line.c_str());
      }
    }
    return last;
  }

  bool waitAcked(const TestNode& n, int64_t at_least) {
    return eventually([&] { return acked(n) >= at_least; }, std::chrono::seconds(60));
  }

  // Every acknowledged record of the writer on `from` is in the copy of `on`.
  void expectEveryAcknowledgedRecord(const TestNode& from, const TestNode& on) {
    const int64_t last = acked(from);
    ASSERT_GT(last, 0);
    std::istringstream in(on.readFile(data(on) + "/records.log"));
    std::set<int64_t> have;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("record ", 0) == 0 && line.size() == 16) {
        have.insert(std::atoll(line.c_str() + 7));
      }
    }
    int64_t missing = 0;
    int64_t first_missing = 0;
    for (int64_t i = 1; i <= last; ++i) {
      if (have.count(i) == 0) {
        missing += 1;
        first_missing = first_missing == 0 ? i : first_missing;
      }
    }
    EXPECT_EQ(missing, 0) << "of " << last << " acknowledged records, " << missing
                          << " are missing on " << on.netns() << ", the first " << first_missing;
  }

  int occurrences(const TestNode& n, const std::string& text) const {
    const std::string log = n.halo({"log", "-A", "-s", "3000", "-m", kModule}).output;
    int count = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) {
      ++count;
    }
    return count;
  }

  void expectIdentical(const TestNode& n) {
    auto r = n.halo({"rfsverify", "-m", kModule}, std::chrono::seconds(300));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, ::testing::HasSubstr("identical on both nodes"));
  }

  // The summary of the last reintegration that `primary` ended: "changes only, 3 files, 1 other
  // entries, 655360 bytes copied, 0 bytes hashed, 0.2 s" (or "every file compared, ...").
  std::string lastReintegration(const TestNode& primary) const {
    const std::string log = primary.halo({"log", "-A", "-s", "3000", "-m", kModule}).output;
    const std::string mark = "Reintegration ended (synchronize): ";
    const size_t at = log.rfind(mark);
    if (at == std::string::npos) {
      return "";
    }
    const size_t end = log.find('\n', at);
    return log.substr(at + mark.size(), end == std::string::npos ? end : end - at - mark.size());
  }
  static uint64_t bytesCopied(const std::string& summary) {
    const size_t at = summary.find(" bytes copied");
    const size_t start = summary.rfind(", ", at);
    if (at == std::string::npos || start == std::string::npos) {
      return UINT64_MAX;
    }
    return std::strtoull(summary.c_str() + start + 2, nullptr, 10);
  }

  // Rewrites `blocks` distinct 4 KiB blocks of `file` (a path in n's replicated directory),
  // through n's mount, chosen pseudo-randomly from `seed`; returns their bytes.
  uint64_t rewriteBlocks(const TestNode& n, const std::string& file, int blocks, int seed) {
    auto r = onNode(n, "python3 -c \"import os, random\nr = random.Random(" + std::to_string(seed) +
                           ")\nf = os.open('" + data(n) + "/" + file +
                           "', os.O_WRONLY)\nn = os.fstat(f).st_size // 4096\nfor b in r.sample("
                           "range(n), " +
                           std::to_string(blocks) +
                           "):\n    os.pwrite(f, os.urandom(4096), b * 4096)\nos.fsync(f)\"");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return static_cast<uint64_t>(blocks) * 4096;
  }

  // A node that lost its power (powerOff) boots: its links come up and its daemon starts.
  void powerOn(TestNode& n) {
    std::string why;
    ASSERT_TRUE(n.setLink("eth0", true));
    ASSERT_TRUE(n.startDaemon(&why)) << why;
  }

  // A tree of some size on the primary before the secondary joins: its reintegration lasts.
  void populate(const TestNode& n, int mib) {
    auto r = onNode(n, "set -e; cd " + data(n) + "; tar -C /usr/include -cf - . | tar -xf -; " +
                           "dd if=/dev/urandom of=big bs=1M count=" + std::to_string(mib) +
                           " status=none; sync -f .");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
};

}  // namespace halo::test
