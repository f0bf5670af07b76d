// Replication end to end on one machine (replication_fixture.h): real workloads run through the
// mount, before, during and after a full reintegration, then the two trees are compared block by
// block.

#include "rfs/replication_fixture.h"

namespace halo::rfs {
namespace {

using fixture::Events;
using fixture::ReplicationTest;
using fixture::sh;

TEST_F(ReplicationTest, UntarOfARealTree) {
  startPair();
  ASSERT_EQ(sh("tar -C /usr/include -cf '" + tmp_ + "/linux.tar' linux"), 0);
  ASSERT_EQ(sh("tar -C '" + primary_ + "' -xf '" + tmp_ + "/linux.tar'"), 0);
  expectIdenticalTrees();
}

TEST_F(ReplicationTest, SqliteTransactions) {
  startPair();
  const std::string db = primary_ + "/app.db";
  std::string script = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n";
  for (int i = 0; i < 200; ++i) {
    script += "BEGIN; INSERT INTO t(v) VALUES(hex(randomblob(64))); COMMIT;\n";
  }
  std::ofstream(tmp_ + "/script.sql") << script;
  ASSERT_EQ(sh("sqlite3 '" + db + "' < '" + tmp_ + "/script.sql'"), 0);
  expectIdenticalTrees();
  // The copy is a valid database with every transaction.
  ASSERT_EQ(sh("test \"$(sqlite3 '" + secondary_ +
               "/app.db' 'PRAGMA integrity_check; "
               "SELECT count(*) FROM t;' | tr '\\n' ' ')\" = 'ok 200 '"),
            0);
}

TEST_F(ReplicationTest, GitRepositoryOperations) {
  startPair();
  const std::string repo = primary_ + "/repo";
  ASSERT_EQ(sh("set -e; git init -q '" + repo + "'; cd '" + repo +
               "'; git config user.email t@example.org; git config user.name t; "
               "for i in 1 2 3 4 5; do seq $i 1000 > f$i; git add f$i; git commit -qm c$i; done; "
               "git mv f1 g1; git commit -qm mv; git gc -q; git branch b; git checkout -q b; "
               "rm f2; git commit -qam rm"),
            0);
  expectIdenticalTrees();
  ASSERT_EQ(sh("git -C '" + secondary_ + "/repo' fsck --strict > /dev/null"), 0);
}

const char* kTrickyTree =
    "mkdir -p a/b/c; echo one > a/b/c/f; "
    "mv a/b z; ln z/c/f hard; ln -s z/c/f soft; ln -s /etc/passwd abs; "
    "truncate -s 1G sparse; dd if=/dev/urandom of=sparse bs=4k seek=1000 count=2 "
    "conv=notrunc status=none; printf 0123456789 > t; truncate -s 4 t; "
    "chmod 0640 t; chown 1234:5678 t; touch -d '2020-01-02 03:04:05' t; mkfifo fifo; "
    "setfattr -n user.color -v blue t; ";

TEST_F(ReplicationTest, RenamesTruncatesSparseFilesLinksAndPermissions) {
  startPair();
  ASSERT_EQ(sh(std::string("set -e; cd '") + primary_ + "'; " + kTrickyTree +
               "python3 -c \"import os\nf=open('open.txt','w'); f.write('before '); f.flush()\n"
               "os.rename('open.txt','renamed.txt'); f.write('after'); f.close()\n"
               "g=open('gone.txt','w'); os.unlink('gone.txt'); g.write('lost'); g.close()\""),
            0);
  expectIdenticalTrees();
  std::ifstream in(secondary_ + "/renamed.txt");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "before after");
  EXPECT_FALSE(std::filesystem::exists(secondary_ + "/gone.txt"));
}

// The primary holds a tree before the secondary joins: the reintegration copies all of it.
TEST_F(ReplicationTest, FullReintegrationIntoAnEmptySecondary) {
  ASSERT_EQ(sh("set -e; cd '" + primary_ + "'; tar -C /usr/include -cf - linux | tar -xf -; " +
               kTrickyTree + "dd if=/dev/urandom of=big bs=1M count=24 status=none"),
            0);
  startPair();
  const auto status = primary_service_->status();
  EXPECT_GT(status["reintegration"].value("bytes_copied", uint64_t{0}), uint64_t{24} << 20);
  expectIdenticalTrees();
}

// The secondary holds a stale, partly different copy: only what differs is copied, and what the
// primary does not have goes away.
TEST_F(ReplicationTest, FullReintegrationRepairsAStaleSecondary) {
  ASSERT_EQ(sh("set -e; cd '" + primary_ + "'; tar -C /usr/include -cf - linux | tar -xf -; " +
               kTrickyTree + "dd if=/dev/urandom of=big bs=1M count=32 status=none"),
            0);
  ASSERT_EQ(sh("set -e; cp -a '" + primary_ + "/.' '" + secondary_ + "/'; cd '" + secondary_ +
               "'; dd if=/dev/zero of=big bs=4k seek=100 count=3 conv=notrunc status=none; "
               "rm -r linux/netfilter; echo extra > linux/extra.h; mkdir -p stale/dir; "
               "echo x > stale/dir/f; rm soft; ln -s elsewhere soft; rm fifo; mkdir fifo; "
               "chmod 0600 linux/types.h; rm hard; echo separate > hard; "
               "setfattr -x user.color t; setfattr -n user.stale -v 1 z/c/f; "
               "truncate -s 10 t"),
            0);
  startPair();
  const auto status = primary_service_->status();
  const uint64_t copied = status["reintegration"].value("bytes_copied", uint64_t{0});
  EXPECT_GT(copied, 0u);
  // The three zeroed 4 KiB blocks fall in one or two 64 KiB blocks; the netfilter headers and
  // a few small files come on top: far less than the 32 MiB file.
  EXPECT_LT(copied, uint64_t{4} << 20) << status.dump();
  expectIdenticalTrees();
}

// The application keeps writing, renaming and deleting while the secondary reintegrates.
TEST_F(ReplicationTest, ReintegrationWhileTheApplicationWrites) {
  ASSERT_EQ(sh("set -e; cd '" + primary_ +
               "'; tar -C /usr/include -cf - . | tar -xf -; "
               "dd if=/dev/urandom of=big bs=1M count=256 status=none"),
            0);
  // The secondary has an older copy, so files are compared (hashed while written), not sent.
  ASSERT_EQ(sh("set -e; cp -a '" + primary_ + "/.' '" + secondary_ + "/'; cd '" + secondary_ +
               "'; dd if=/dev/zero of=big bs=1M seek=7 count=1 conv=notrunc status=none"),
            0);
  startPrimary();
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0};
  std::thread writer([&] {
    for (int i = 0; !stop && i < 100000; ++i) {
      const std::string n = std::to_string(i % 50);
      sh("cd '" + primary_ + "' && echo " + std::to_string(i) + " >> log.txt && " +
         "dd if=/dev/urandom of=big bs=4k seek=" + std::to_string((i * 37) % 60000) +
         " count=1 conv=notrunc status=none && mkdir -p w/" + n + " && echo " + std::to_string(i) +
         " > w/" + n + "/f && mv w/" + n + " w/m" + n + " && rm -rf w/" + n + "-old && mv w/m" + n +
         " w/" + n + "-old && " + "mv linux/" +
         (i % 2 ? "a.out.h linux/a.out.h.moved" : "a.out.h.moved linux/a.out.h") +
         " 2>/dev/null; true");
      ++rounds;
    }
  });
  while (rounds < 3) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int before = rounds;
  startSecondary();
  const bool synced = secondary_events_.waitFor("synced") && primary_events_.waitFor("synced");
  const int during = rounds - before;
  stop = true;
  writer.join();
  ASSERT_TRUE(synced) << primary_events_.all() << secondary_events_.all();
  // The workload really ran while the reintegration did.
  EXPECT_GE(during, 5) << primary_events_.all();
  expectIdenticalTrees();
}

// <rfs reiallowedbw>: the copies keep to the cap (12 MiB at 4 MiB/s: about 3 s).
TEST_F(ReplicationTest, ReintegrationKeepsToItsBandwidthCap) {
  bandwidth_kib_s_ = 4096;
  ASSERT_EQ(sh("dd if=/dev/urandom of='" + primary_ + "/big' bs=1M count=12 status=none"), 0);
  const auto t0 = std::chrono::steady_clock::now();
  startPair();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(took, 2.5);
  EXPECT_LT(took, 30.0);
  expectIdenticalTrees();
}

TEST_F(ReplicationTest, SeveralConnections) {
  connections_ = 3;
  ASSERT_EQ(sh("set -e; cd '" + primary_ +
               "'; dd if=/dev/urandom of=big bs=1M count=16 "
               "status=none; tar -C /usr/include -cf - linux | tar -xf -"),
            0);
  startPair();
  ASSERT_EQ(sh("set -e; cd '" + primary_ +
               "'; for i in $(seq 1 200); do echo $i > n$i; done; "
               "dd if=/dev/urandom of=big2 bs=1M count=16 status=none"),
            0);
  expectIdenticalTrees();
}

// <notreplicated>: what is excluded stays on its node, on both sides.
TEST_F(ReplicationTest, NotReplicatedPathsStayLocal) {
  replicated_ = [](std::string_view p, bool) { return p != "tmp" && p.rfind("tmp/", 0) != 0; };
  ASSERT_EQ(
      sh("set -e; mkdir -p '" + secondary_ + "/tmp'; echo mine > '" + secondary_ + "/tmp/local'"),
      0);
  startPair();
  // Written where it is not replicated, then moved or linked into the replicated part (the
  // usual "write a temporary file, rename it into place"): the secondary gets it whole.
  ASSERT_EQ(sh("set -e; cd '" + primary_ +
               "'; mkdir -p tmp; echo scratch > tmp/s; echo kept > k; "
               "mkdir -p tmp/d/e; echo deep > tmp/d/e/f; ln -s ../k tmp/d/l; "
               "dd if=/dev/urandom of=tmp/big bs=1M count=3 status=none; "
               "mv tmp/big big; mv tmp/d d; echo linked > tmp/h; ln tmp/h h; "
               "echo x > out; mv out tmp/out"),
            0);
  expectIdenticalTrees();
  EXPECT_TRUE(std::filesystem::exists(secondary_ + "/tmp/local"));
  EXPECT_FALSE(std::filesystem::exists(secondary_ + "/tmp/s"));
  EXPECT_TRUE(std::filesystem::exists(secondary_ + "/k"));
  EXPECT_TRUE(std::filesystem::exists(secondary_ + "/d/e/f"));
  EXPECT_TRUE(std::filesystem::is_symlink(secondary_ + "/d/l"));
  EXPECT_EQ(std::filesystem::file_size(secondary_ + "/big"), 3u << 20);
  EXPECT_TRUE(std::filesystem::exists(secondary_ + "/h"));
  EXPECT_FALSE(std::filesystem::exists(secondary_ + "/out"));  // moved out: gone there too
}

// "!regex" (replicate only what matches): matching files, and every directory to hold them.
TEST_F(ReplicationTest, OnlyMatchingFilesAreReplicated) {
  replicated_ = [](std::string_view p, bool dir) { return dir || p.ends_with(".db"); };
  ASSERT_EQ(sh("set -e; cd '" + primary_ + "'; echo 1 > old.db; echo 2 > old.log"), 0);
  startPair();
  ASSERT_EQ(sh("set -e; cd '" + primary_ +
               "'; mkdir -p d/e; echo 3 > d/e/new.db; "
               "echo 4 > d/e/new.log; mv old.log moved.db; mv d/e/new.db d/e/renamed.log"),
            0);
  expectIdenticalTrees();
  EXPECT_TRUE(std::filesystem::exists(secondary_ + "/old.db"));
  EXPECT_TRUE(std::filesystem::exists(secondary_ + "/moved.db"));  // came in by its new name
  EXPECT_TRUE(std::filesystem::is_directory(secondary_ + "/d/e"));
  EXPECT_FALSE(std::filesystem::exists(secondary_ + "/d/e/new.log"));
  EXPECT_FALSE(std::filesystem::exists(secondary_ + "/d/e/renamed.log"));  // went out by it
}

// Losing the secondary never fails the application's operation (the session was not synced
// when it went, so nothing waits).
TEST_F(ReplicationTest, LosingTheSecondaryNeverFailsTheApplication) {
  startPair();
  ASSERT_EQ(sh("echo a > '" + primary_ + "/a' && sync -f '" + primary_ + "'"), 0);
  secondary_service_.reset();  // its connections close
  ASSERT_TRUE(primary_events_.waitFor("lost")) << primary_events_.all();
  // Synced when lost: fenced until the runtime knows the peer is outdated.
  EXPECT_TRUE(primary_service_->status().value("fenced", false));
  std::thread unfence([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    primary_service_->unfence();
  });
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(sh("echo b > '" + primary_ + "/b' && sync -f '" + primary_ + "'"), 0);
  const auto waited = std::chrono::steady_clock::now() - t0;
  unfence.join();
  // The fsync waited for the fence to be lifted, not for the send timeout.
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::seconds(10));
  EXPECT_FALSE(primary_service_->status().value("fenced", true));
  ASSERT_EQ(sh("echo c > '" + primary_ + "/c' && sync -f '" + primary_ + "'"), 0);
}

}  // namespace
}  // namespace halo::rfs
