// Fast reintegration (change_log.h, journal.h, resync_fast.cc) end to end on one machine
// (replication_fixture.h): after the secondary's absence, only what changed meanwhile is copied,
// whatever the application did (rewrites of blocks, creates, renames, deletes, metadata), also
// while it keeps writing, across a restart of the primary and after an interrupted attempt.

#include "rfs/replication_fixture.h"

namespace halo::rfs {
namespace {

using fixture::ReplicationTest;
using fixture::sh;

constexpr int kBigMiB = 64;
constexpr int kRewrites = 160;  // 4 KiB blocks: about 1% of the big file

class FastResyncTest : public ReplicationTest {
 protected:
  // A synced pair over a real tree and a big file.
  void startSyncedPair() {
    ASSERT_EQ(sh("set -e; cd '" + primary_ + "'; tar -C /usr/include -cf - linux | tar -xf -; " +
                 "dd if=/dev/urandom of=big bs=1M count=" + std::to_string(kBigMiB) +
                 " status=none; for i in 1 2 3; do echo $i > small$i; done"),
              0);
    startPair();
    EXPECT_TRUE(primary_events_.seen("every file compared")) << primary_events_.all();
  }

  // The secondary's process stops; the primary goes on alone, as the module runtime has it
  // (the fence lifted once the peer is known to be outdated).
  void stopSecondary() {
    secondary_service_.reset();
    ASSERT_TRUE(primary_events_.waitFor("lost")) << primary_events_.all();
    primary_service_->unfence();
  }

  // What the application changes while the secondary is away: kRewrites distinct 4 KiB blocks
  // of the big file, and a bit of everything else.
  void changeThings(unsigned seed) {
    ASSERT_EQ(sh("cd '" + primary_ + "' && python3 -c \"import os, random\nr = random.Random(" +
                 std::to_string(seed) + ")\nf = os.open('big', os.O_WRONLY)\nfor b in r.sample(" +
                 "range(" + std::to_string(kBigMiB * 256) + "), " + std::to_string(kRewrites) +
                 "):\n    os.pwrite(f, os.urandom(4096), b * 4096)\nos.close(f)\""),
              0);
    ASSERT_EQ(sh("set -e; cd '" + primary_ +
                 "'; echo new > newfile; mkdir -p newdir/sub; echo x > newdir/sub/f; "
                 "mv linux/a.out.h linux/renamed.h; rm -r linux/netfilter; "
                 "chmod 600 linux/types.h; setfattr -n user.x -v 1 linux/kernel.h; "
                 "truncate -s 1 small1; rm small2; ln -s small3 link3"),
              0);
  }

  void rejoin() {
    primary_events_.clear();
    secondary_events_.clear();
    startSecondary();
    waitSynced();
  }

  // As if the primary had been killed before its journal got any of the changes: its journal
  // says it did not stop cleanly and holds none of them; it starts again on what is left.
  void crashPrimary(bool keep_activity_log = true) {
    ASSERT_TRUE(primary_service_->stop().ok());
    primary_service_.reset();
    ASSERT_EQ(sh("sqlite3 '" + tmp_ +
                 "/primary.db' \"DELETE FROM rfs_changes; UPDATE rfs_state SET value = 0 WHERE "
                 "key = 'clean'\""),
              0);
    if (!keep_activity_log) {
      std::filesystem::remove(tmp_ + "/primary-al.db");
    }
    startPrimary();
  }

  uint64_t copied() {
    return primary_service_->status()["reintegration"].value("bytes_copied", uint64_t{0});
  }
  uint64_t hashed() {
    return primary_service_->status()["reintegration"].value("bytes_hashed", uint64_t{0});
  }
};

TEST_F(FastResyncTest, OnlyWhatChangedWhileTheSecondaryWasAwayIsCopied) {
  startSyncedPair();
  stopSecondary();
  changeThings(1);
  const uint64_t old_base = primary_service_->status()["changes"].value("base", uint64_t{0});
  rejoin();
  EXPECT_TRUE(primary_events_.seen("changes only")) << primary_events_.all();
  // The rewritten blocks, the renamed header (sent whole under its new name) and a few bytes of
  // new files: nothing else is read or sent.
  const uint64_t blocks = uint64_t{kRewrites} * 4096;
  EXPECT_GE(copied(), blocks);
  EXPECT_LT(copied(), blocks + (64u << 10)) << primary_service_->status().dump();
  EXPECT_LE(hashed(), 4096u);  // the truncated small file's one block, compared
  // The new sync point counts once the secondary has everything on its disk (its next sync,
  // asked for at once): then on both nodes.
  uint64_t secondary_base = old_base;
  uint64_t primary_base = 0;
  for (int i = 0; i < 1000 && (secondary_base == old_base || primary_base != secondary_base);
       ++i) {
    secondary_base = secondary_service_->status().value("base", uint64_t{0});
    primary_base = primary_service_->status()["changes"].value("base", uint64_t{0});
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(secondary_base, old_base);
  EXPECT_NE(secondary_base, 0u);
  EXPECT_EQ(primary_base, secondary_base);
  EXPECT_EQ(primary_service_->status()["changes"].value("paths", uint64_t{1}), 0u);
  expectIdenticalTrees();
}

TEST_F(FastResyncTest, TheLogSurvivesACleanRestartOfThePrimary) {
  startSyncedPair();
  stopSecondary();
  changeThings(2);
  ASSERT_TRUE(primary_service_->stop().ok());
  primary_service_.reset();
  startPrimary();
  ASSERT_EQ(sh("echo after-restart >> '" + primary_ + "/small3'"), 0);
  rejoin();
  EXPECT_TRUE(primary_events_.seen("changes only")) << primary_events_.all();
  EXPECT_LT(copied(), uint64_t{kRewrites} * 4096 + (64u << 10));
  expectIdenticalTrees();
}

// The activity log alone tells what may differ: every change is still reintegrated, and only
// the zones it names (4 MiB each) are copied.
TEST_F(FastResyncTest, AfterACrashThePrimarysActivityLogTellsWhatChanged) {
  startSyncedPair();
  stopSecondary();
  changeThings(3);
  crashPrimary();
  EXPECT_TRUE(primary_events_.seen("its activity log names")) << primary_events_.all();
  rejoin();
  EXPECT_TRUE(primary_events_.seen("changes only")) << primary_events_.all();
  // The zones it names (the big file's 16) and what was born since its epoch began (the new
  // small files) are compared: only what differs is copied.
  EXPECT_LE(hashed(), (uint64_t{kBigMiB} << 20) + (64u << 10));
  EXPECT_GE(copied(), uint64_t{kRewrites} * 4096);
  EXPECT_LE(copied(), uint64_t{kRewrites} * 4096 + (64u << 10))
      << primary_service_->status().dump();
  expectIdenticalTrees();
}

// Cut, then grown back to the same size: the sizes agree, the bytes do not (what the cut took
// reads as zeros on the primary).
const std::string kCutAndGrow = "truncate -s 0 big && truncate -s " + std::to_string(kBigMiB) +
                                "M big && : > small1 && echo 1 > small1";

TEST_F(FastResyncTest, AFileCutAndGrownBackIsCompared) {
  startSyncedPair();
  stopSecondary();
  ASSERT_EQ(sh("cd '" + primary_ + "' && " + kCutAndGrow), 0);
  rejoin();
  EXPECT_TRUE(primary_events_.seen("changes only")) << primary_events_.all();
  expectIdenticalTrees();
}

// The same through the activity log alone (its Tail entries).
TEST_F(FastResyncTest, AfterACrashAFileCutAndGrownBackIsCompared) {
  startSyncedPair();
  stopSecondary();
  ASSERT_EQ(sh("cd '" + primary_ + "' && " + kCutAndGrow), 0);
  crashPrimary();
  EXPECT_TRUE(primary_events_.seen("its activity log names")) << primary_events_.all();
  rejoin();
  EXPECT_TRUE(primary_events_.seen("changes only")) << primary_events_.all();
  expectIdenticalTrees();
}

// A file's changes are logged under the name they were made through: once that name is
// removed, its other names would not be examined, so the next reintegration compares all.
TEST_F(FastResyncTest, RemovingANameOfAFileWithOtherNamesMeansEveryFileIsCompared) {
  ASSERT_EQ(sh("set -e; cd '" + primary_ + "'; echo old > a; ln a b; mkdir d; echo old > d/x"),
            0);
  startPair();
  stopSecondary();
  // (Written back before the name goes: see the note on writeback after an unlink in
  // docs/replication.md.)
  ASSERT_EQ(sh("set -e; cd '" + primary_ + "'; cat a >/dev/null; echo new >> b; rm b"), 0);
  rejoin();
  EXPECT_TRUE(primary_events_.seen("every file compared")) << primary_events_.all();
  expectIdenticalTrees();
}

TEST_F(FastResyncTest, ACrashWithoutAnActivityLogMeansEveryFileIsCompared) {
  startSyncedPair();
  stopSecondary();
  changeThings(4);
  crashPrimary(/*keep_activity_log=*/false);
  rejoin();
  EXPECT_TRUE(primary_events_.seen("this node's change log is incomplete"))
      << primary_events_.all();
  EXPECT_GT(hashed(), uint64_t{kBigMiB - 1} << 20);
  expectIdenticalTrees();
}

TEST_F(FastResyncTest, ChangesOnlyWhileTheApplicationKeepsWriting) {
  startSyncedPair();
  stopSecondary();
  changeThings(4);
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0};
  std::thread writer([&] {
    for (int i = 0; !stop && i < 100000; ++i) {
      const std::string n = std::to_string(i % 20);
      sh("cd '" + primary_ + "' && echo " + std::to_string(i) + " >> log.txt && " +
         "dd if=/dev/urandom of=big bs=4k seek=" + std::to_string((i * 37) % 16000) +
         " count=1 conv=notrunc status=none && mkdir -p w/" + n + " && echo " + std::to_string(i) +
         " > w/" + n + "/f && mv w/" + n + " w/m" + n + " && rm -rf w/" + n + "-old && mv w/m" + n +
         " w/" + n + "-old; mv newdir newdir2 2>/dev/null || mv newdir2 newdir; true");
      ++rounds;
    }
  });
  while (rounds < 3) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int before = rounds;
  primary_events_.clear();
  secondary_events_.clear();
  startSecondary();
  const bool synced = secondary_events_.waitFor("synced") && primary_events_.waitFor("synced");
  ASSERT_TRUE(synced) << primary_events_.all() << secondary_events_.all();
  // Writes go on after the end, replicated synchronously, until the trees are compared.
  while (rounds < before + 5) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop = true;
  writer.join();
  EXPECT_TRUE(primary_events_.seen("changes only")) << primary_events_.all();
  expectIdenticalTrees();
}

// The secondary stops in the middle of a fast reintegration: the next one is fast again, and
// covers what the first one had begun (both logs stay until a reintegration completes).
TEST_F(FastResyncTest, AnInterruptedFastReintegrationIsResumedFast) {
  startSyncedPair();
  stopSecondary();
  changeThings(5);
  // Restarted with a copy rate of about 2.5 s for the rewritten blocks: time to interrupt it.
  ASSERT_TRUE(primary_service_->stop().ok());
  primary_service_.reset();
  bandwidth_kib_s_ = 256;
  startPrimary();
  primary_events_.clear();
  startSecondary();
  ASSERT_TRUE(primary_events_.waitFor("connected")) << primary_events_.all();
  for (int i = 0; i < 400 && copied() < 64 * 1024; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(primary_events_.seen("synced")) << primary_events_.all();
  secondary_service_.reset();
  ASSERT_TRUE(primary_events_.waitFor("lost")) << primary_events_.all();
  ASSERT_EQ(sh("echo more >> '" + primary_ + "/small3'"), 0);
  rejoin();
  EXPECT_TRUE(primary_events_.seen("changes only")) << primary_events_.all();
  expectIdenticalTrees();
}

}  // namespace
}  // namespace halo::rfs
