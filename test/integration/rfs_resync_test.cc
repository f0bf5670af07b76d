// Reintegration after absences and crashes, between two real nodes (harness/rfs_fixture.h):
// after a clean stop or a crash of the secondary, a crash of the primary and its return, or a
// crash in the middle of a reintegration, only what changed is copied (the summary the primary
// logs says "changes only" and how many bytes were copied), every acknowledged write is kept,
// and rfsverify finds both copies identical.

#include "harness/rfs_fixture.h"

namespace halo::test {
namespace {

using ::testing::HasSubstr;

constexpr int kBigMiB = 64;
constexpr int kRewrites = 160;  // 4 KiB blocks: 1% of the big file
// Beyond the rewritten blocks: small files (starts.log, a new file), rounded up.
constexpr uint64_t kSmallExtra = 256 * 1024;

class ResyncFixture : public RfsFixture {
 protected:
  // A synced pair whose replicated directory holds a big file.
  void startPairWithData(const std::function<void(const std::string&)>& edit = nullptr) {
    install(edit);
    startPair();
    auto r = onNode(*n1_, "set -e; cd " + data(*n1_) + "; dd if=/dev/urandom of=big bs=1M count=" +
                              std::to_string(kBigMiB) + " status=none; sync -f .");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  void stopModule(TestNode& n) {
    ASSERT_EQ(n.halo({"stop", "-m", kModule}).exit_code, 0);
    waitState(n, "STOP");
  }
  void startSecond(TestNode& n, int seconds = 120) {
    ASSERT_EQ(n.halo({"start", "-m", kModule}).exit_code, 0);
    waitState(n, "SECOND", seconds);
  }
  // The node loses power: its link first, then every process.
  void crash(TestNode& n) {
    ASSERT_TRUE(n.setLink("eth0", false));
    n.powerOff();
  }
  // "...; 64.2 MiB sent; ..." in `halo state -v` (the replication line of a primary).
  static double mebibytesSent(const std::string& state) {
    const size_t at = state.find(" MiB sent;");
    const size_t start = at == std::string::npos ? at : state.rfind("; ", at);
    if (start == std::string::npos) {
      return 0;  // none, or less than a MiB, or already GiB (never here)
    }
    return std::strtod(state.c_str() + start + 2, nullptr);
  }
  void expectChangesOnly(const TestNode& primary, uint64_t at_most) {
    const std::string summary = lastReintegration(primary);
    EXPECT_THAT(summary, HasSubstr("changes only"));
    EXPECT_LE(bytesCopied(summary), at_most) << summary;
  }
};

TEST_F(ResyncFixture, AfterACleanStopOfTheSecondaryOnlyTheChangesAreCopied) {
  startPairWithData();
  stopModule(*n2_);
  waitState(*n1_, "ALONE");
  const uint64_t rewritten = rewriteBlocks(*n1_, "big", kRewrites, 1);
  ASSERT_EQ(onNode(*n1_, "echo new > " + data(*n1_) + "/new").exit_code, 0);
  // rfsdiff on the primary: what the secondary will get.
  auto diff = n1_->halo({"rfsdiff", "-m", kModule});
  EXPECT_EQ(diff.exit_code, 0) << diff.output;
  EXPECT_THAT(diff.output, HasSubstr("gets the changes since sync point"));
  EXPECT_THAT(diff.output, HasSubstr("at most 2 files, 640.0 KiB"));  // big's blocks, new
  startSecond(*n2_);
  waitState(*n1_, "PRIM");
  expectChangesOnly(*n1_, rewritten * 12 / 10 + kSmallExtra);
  EXPECT_GE(bytesCopied(lastReintegration(*n1_)), rewritten);
  expectIdentical(*n2_);
}

TEST_F(ResyncFixture, AfterACrashOfTheSecondaryOnlyTheChangesAreCopied) {
  startPairWithData();
  // What the secondary acknowledged but had not yet on its disk counts as missing after its
  // crash: once its periodic sync confirmed the big file, nothing of it is. The status the
  // runtime shows may predate the file (it is refreshed about once a second): only one that
  // counts the big file as sent tells.
  ASSERT_TRUE(eventually(
      [&] {
        const std::string out = n1_->halo({"state", "-v", "-m", kModule}).output;
        return out.find(" 0 operations not yet on its disk") != std::string::npos &&
               mebibytesSent(out) >= kBigMiB;
      },
      std::chrono::seconds(30)));
  crash(*n2_);
  waitState(*n1_, "ALONE");
  const uint64_t rewritten = rewriteBlocks(*n1_, "big", kRewrites, 2);
  powerOn(*n2_);
  startSecond(*n2_);
  waitState(*n1_, "PRIM");
  expectChangesOnly(*n1_, rewritten * 12 / 10 + kSmallExtra);
  expectIdentical(*n2_);
}

// The primary dies while its application writes; the secondary takes over and writes in turn;
// the old primary returns as secondary: its activity log tells what it may hold that the new
// primary does not (compared, never trusted), the new primary's log what it changed.
TEST_F(ResyncFixture, AfterACrashOfThePrimaryItsReturnCopiesOnlyTheChanges) {
  startPairWithData();
  startWriter(*n1_);
  ASSERT_TRUE(waitAcked(*n1_, 200)) << n1_->readFile(n1_->root() + "/writer.out");
  crash(*n1_);
  waitState(*n2_, "ALONE");
  expectEveryAcknowledgedRecord(*n1_, *n2_);
  const uint64_t rewritten = rewriteBlocks(*n2_, "big", kRewrites, 3);
  powerOn(*n1_);
  startSecond(*n1_);
  waitState(*n2_, "PRIM");
  // What n1 had and n2 may not: the zones and born files its activity log names, compared;
  // the records file is rewritten at most.
  const uint64_t records = std::filesystem::file_size(data(*n2_) + "/records.log");
  expectChangesOnly(*n2_, rewritten * 12 / 10 + records + kSmallExtra);
  expectIdentical(*n1_);
}

// Both nodes lose power together while the application writes; when they boot, the old
// primary is primary again and the secondary gets only what its crash may have cost.
TEST_F(ResyncFixture, AfterBothNodesCrashNothingAcknowledgedIsLost) {
  startPairWithData();
  startWriter(*n1_);
  ASSERT_TRUE(waitAcked(*n1_, 200)) << n1_->readFile(n1_->root() + "/writer.out");
  crash(*n2_);
  crash(*n1_);
  powerOn(*n1_);
  powerOn(*n2_);
  ASSERT_EQ(n1_->halo({"start", "-m", kModule}).exit_code, 0);
  startSecond(*n2_);
  waitState(*n1_, "PRIM");
  expectEveryAcknowledgedRecord(*n1_, *n1_);
  expectEveryAcknowledgedRecord(*n1_, *n2_);
  EXPECT_THAT(lastReintegration(*n1_), HasSubstr("changes only"));
  expectIdentical(*n2_);
}

// The secondary crashes in the middle of a fast reintegration: the next one is fast too, and
// brings it to the end.
TEST_F(ResyncFixture, ACrashDuringAFastReintegrationIsFollowedByAFastOne) {
  // 2 MB/s: the rewritten 8 MiB take about 4 s, time to cut it.
  startPairWithData(
      [](const std::string& dir) { setConfig(dir, "<rfs>", "<rfs reiallowedbw=\"2000\">"); });
  stopModule(*n2_);
  waitState(*n1_, "ALONE");
  const uint64_t rewritten = rewriteBlocks(*n1_, "big", 2048, 4);
  ASSERT_EQ(n2_->halo({"start", "-m", kModule}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return logHas(*n1_, "begins: changes only"); }));
  crash(*n2_);
  waitState(*n1_, "ALONE");
  EXPECT_THAT(lastReintegration(*n1_), HasSubstr("every file compared"));  // the first one's
  powerOn(*n2_);
  startSecond(*n2_, 180);
  waitState(*n1_, "PRIM");
  expectChangesOnly(*n1_, rewritten * 12 / 10 + kSmallExtra);
  expectIdentical(*n2_);
}

// The primary's node crashes in the middle of a journal commit (a fault point stops its
// replication process there, then the whole node loses power): the journal keeps its previous
// state, the activity log covers the rest, and the reintegration stays fast.
TEST_F(ResyncFixture, ACrashDuringAJournalCommitLosesNothing) {
  startPairWithData();
  stopModule(*n2_);
  waitState(*n1_, "ALONE");
  // A replication process that carries the fault point: the primary restarts with it.
  std::ofstream(n1_->varDir(kModule) + "/rfs-fault") << "journal-commit 1\n";
  stopModule(*n1_);
  ASSERT_EQ(n1_->halo({"prim", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "ALONE");
  // 100 blocks in the first 4 MiB zone of the big file, and a new file.
  auto r = onNode(*n1_, "python3 -c \"import os, random\nr = random.Random(8)\nf = os.open('" +
                            data(*n1_) +
                            "/big', os.O_WRONLY)\nfor b in r.sample(range(1024), 100):\n    "
                            "os.pwrite(f, os.urandom(4096), b * 4096)\nos.fsync(f)\n\"; echo x > " +
                            data(*n1_) + "/late && sync -f " + data(*n1_));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string hit = n1_->varDir(kModule) + "/rfs-fault-hit";
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(hit); }, std::chrono::seconds(30)));
  crash(*n1_);
  std::filesystem::remove(n1_->varDir(kModule) + "/rfs-fault");
  powerOn(*n1_);
  ASSERT_EQ(n1_->halo({"prim", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "ALONE");
  EXPECT_TRUE(logHas(*n1_, "its activity log names"));
  startSecond(*n2_);
  waitState(*n1_, "PRIM");
  // The zone of the rewritten blocks is compared: the blocks and the small files are copied.
  expectChangesOnly(*n1_, 100u * 4096 + kSmallExtra);
  expectIdentical(*n2_);
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/late"), "x\n");
}

// secondforce -d: the secondary copies only what the primary modified since the date; what it
// holds of older files is taken as identical (here even a copy changed behind Halo's back).
TEST_F(ResyncFixture, SecondforceCopiesOnlyWhatWasModifiedSinceTheDate) {
  startPairWithData();
  ASSERT_EQ(onNode(*n1_, "echo same > " + data(*n1_) + "/keep && sync -f " + data(*n1_)).exit_code,
            0);
  stopModule(*n2_);
  waitState(*n1_, "ALONE");
  ASSERT_EQ(onNode(*n2_, "echo mine > " + data(*n2_) + "/keep").exit_code, 0);
  // The date: a second after everything above, before what follows.
  const auto start = std::chrono::system_clock::now();
  ASSERT_TRUE(eventually(
      [&] { return std::chrono::system_clock::now() - start > std::chrono::milliseconds(1100); },
      std::chrono::seconds(5)));
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
  ASSERT_TRUE(eventually(
      [&] { return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()) > t; },
      std::chrono::seconds(5)));
  rewriteBlocks(*n1_, "big", kRewrites, 7);
  ASSERT_EQ(onNode(*n1_, "echo new > " + data(*n1_) + "/new").exit_code, 0);
  auto r = n2_->halo({"secondforce", "-d", date, "-m", kModule});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  waitState(*n2_, "SECOND", 120);
  waitState(*n1_, "PRIM");
  EXPECT_TRUE(logHas(*n1_, "secondforce: only the files modified since"));
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/new"), "new\n");
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/keep"), "mine\n");  // taken as identical: not copied
  r = onNode(*n2_, "cmp " + data(*n2_) + "/big " + n1_->root() + "/var/lib/halo-web/big");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // A date it cannot read is refused with what it expects.
  r = n2_->halo({"secondforce", "-d", "yesterday", "-m", kModule});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("expected YYYY-MM-DD"));
}

// A split brain without a witness: both nodes write alone. On reconnection the former primary
// stays; before the other is resynchronised from it, what the other changed is copied aside,
// byte for byte, and listed.
TEST_F(ResyncFixture, ASplitBrainKeepsTheSacrificedNodesChangesAside) {
  startPairWithData();
  ASSERT_TRUE(lan_->plug(2, false));
  waitState(*n2_, "ALONE");
  waitState(*n1_, "ALONE");
  rewriteBlocks(*n1_, "big", 100, 5);
  ASSERT_EQ(onNode(*n1_, "echo n1 > " + data(*n1_) + "/only-n1").exit_code, 0);
  rewriteBlocks(*n2_, "big", 50, 6);
  const std::string expected = n2_->root() + "/expected";
  auto r = onNode(*n2_, "set -e; cd " + data(*n2_) +
                            "; echo n2-data > only-n2; mkdir -p n2dir; echo deep > n2dir/f; "
                            "sync -f .; mkdir -p " +
                            expected + "; cp -a big only-n2 n2dir " + expected + "/");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(lan_->plug(2, true));
  waitState(*n2_, "SECOND", 120);
  waitState(*n1_, "PRIM");
  EXPECT_TRUE(logHas(*n2_, "Split brain recovery: exiting alone"));
  EXPECT_TRUE(logHas(*n2_, "Split brain: what this node changed while isolated"));
  EXPECT_THAT(lastReintegration(*n1_), HasSubstr("changes only"));
  // The survivor's data is on both nodes.
  expectIdentical(*n2_);
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/only-n1"), "n1\n");
  EXPECT_FALSE(std::filesystem::exists(data(*n2_) + "/only-n2"));
  // The other side's changes are kept, byte for byte.
  const std::string kept = n2_->varDir(kModule) + "/splitbrain";
  r = onNode(*n2_, "set -e; d=$(dirname $(find " + kept + " -name only-n2)); cmp " + expected +
                       "/big $d/big; cmp " + expected + "/only-n2 $d/only-n2; cmp " + expected +
                       "/n2dir/f $d/n2dir/f; "
                       "grep -q only-n2 " +
                       kept + "/*/CHANGES.txt");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace halo::test
