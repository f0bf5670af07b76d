// Replicated directories end to end (harness/rfs_fixture.h): real workloads, acknowledged writes
// across failures, interrupted reintegrations, fullsync, a dead replication process, read_only,
// notreplicated and tocheck.

#include "harness/rfs_fixture.h"

namespace halo::test {
namespace {

using ::testing::HasSubstr;

TEST_F(RfsFixture, RealWorkloadsThroughThePrimaryAreIdenticalOnTheSecondary) {
  install([](const std::string& dir) { setConfig(dir, "<rfs>", "<rfs nbremconn=\"3\">"); });
  startPair();
  EXPECT_TRUE(eventually([&] { return logHas(*n1_, "3 tls connections"); }));
  const std::string d = data(*n1_);
  auto r = onNode(
      *n1_,
      "set -e; cd " + d +
          "; tar -C /usr/include -cf - . | tar -xf -; "
          // git: commits, renames, gc, branches
          "git init -q repo; cd repo; git config user.email t@example.org; git config user.name t; "
          "for i in 1 2 3 4 5; do seq $i 2000 > f$i; git add f$i; git commit -qm c$i; done; "
          "git mv f1 g1; git commit -qm mv; git gc -q; git checkout -q -b b; rm f2; "
          "git commit -qam rm; cd ..; "
          // sqlite: many transactions
          "for i in $(seq 1 100); do echo \"BEGIN; CREATE TABLE IF NOT EXISTS t(v); "
          "INSERT INTO t VALUES(hex(randomblob(100))); COMMIT;\"; done | sqlite3 app.db; "
          // fio with verification
          "fio --name=v --directory=. --size=24m --bs=16k --rw=randwrite --ioengine=psync "
          "--verify=crc32c --do_verify=1 --fsync=32 --output=/dev/null; "
          // sparse files, truncate, permissions, ownership, symlinks, hard links, fifo
          "truncate -s 2G sparse; dd if=/dev/urandom of=sparse bs=4k seek=300000 count=3 "
          "conv=notrunc status=none; printf 0123456789 > t; truncate -s 3 t; chmod 0600 t; "
          "chown 4321:8765 t; ln -s repo/f3 soft; ln t hard; mkfifo fifo; "
          // renames and unlinks of open files
          "python3 -c \"import os\nf=open('o.txt','w'); f.write('a'); f.flush()\n"
          "os.rename('o.txt','p.txt'); f.write('b'); f.close()\n"
          "g=open('gone','w'); os.unlink('gone'); g.write('x'); g.close()\"; sync -f .");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/p.txt"), "ab");
  EXPECT_EQ(onNode(*n2_, "sqlite3 " + data(*n2_) + "/app.db 'PRAGMA integrity_check'").output,
            "ok\n");
  expectIdentical(*n2_);
  expectIdentical(*n1_);
}

TEST_F(RfsFixture, NoAcknowledgedWriteIsLostWhenThePrimaryDies) {
  install();
  startPair();
  startWriter(*n1_);
  ASSERT_TRUE(waitAcked(*n1_, 300)) << n1_->readFile(n1_->root() + "/writer.out");
  // Its link first, so nothing more leaves it, then every process SIGKILLed, mid-stream.
  ASSERT_TRUE(n1_->setLink("eth0", false));
  n1_->powerOff();
  waitState(*n2_, "ALONE");
  expectEveryAcknowledgedRecord(*n1_, *n2_);
}

TEST_F(RfsFixture, NoAcknowledgedWriteIsLostWithAsyncNone) {
  install([](const std::string& dir) { setConfig(dir, "<rfs>", "<rfs async=\"none\">"); });
  startPair();
  startWriter(*n1_);
  ASSERT_TRUE(waitAcked(*n1_, 200)) << n1_->readFile(n1_->root() + "/writer.out");
  ASSERT_TRUE(n1_->setLink("eth0", false));
  n1_->powerOff();
  waitState(*n2_, "ALONE");
  expectEveryAcknowledgedRecord(*n1_, *n2_);
}

// A stop of the primary ends replication after the application and before the end of the stop
// (here a slow poststop): the secondary must see a complete copy, not a broken link, and take
// over.
TEST_F(RfsFixture, AStopOfThePrimaryHandsOverEvenWithSlowScripts) {
  install([](const std::string& dir) {
    std::ofstream(dir + "/bin/poststop") << "#!/bin/sh\nsleep 2\nexit 0\n";
  });
  startPair();
  ASSERT_EQ(onNode(*n1_, "echo last > " + data(*n1_) + "/last && sync -f " + data(*n1_)).exit_code,
            0);
  ASSERT_EQ(n1_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "ALONE");
  EXPECT_TRUE(logHas(*n2_, "Action alone called by heart: remote stop"));
  EXPECT_TRUE(logHas(*n2_, "everything it wrote is here"));
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/last"), "last\n");
}

// The secondary joins while the application writes; once it is up to date the primary dies.
TEST_F(RfsFixture, NoAcknowledgedWriteIsLostAcrossAReintegration) {
  install();
  ASSERT_EQ(n1_->halo({"prim", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "ALONE");
  populate(*n1_, 192);
  startWriter(*n1_);
  ASSERT_TRUE(waitAcked(*n1_, 50));
  const int64_t before = acked(*n1_);
  ASSERT_EQ(n2_->halo({"start", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "SECOND", 120);
  waitState(*n1_, "PRIM");
  EXPECT_GT(acked(*n1_), before);  // it wrote during the reintegration
  ASSERT_TRUE(waitAcked(*n1_, acked(*n1_) + 100));
  ASSERT_TRUE(n1_->setLink("eth0", false));
  n1_->powerOff();
  waitState(*n2_, "ALONE");
  expectEveryAcknowledgedRecord(*n1_, *n2_);
  EXPECT_TRUE(logHas(*n1_, "Reintegration ended (synchronize)"));
}

// A secondary that stops in the middle of its reintegration holds half-copied data: prim is
// refused there, primforce overrides, and a later start reintegrates it again.
TEST_F(RfsFixture, AnInterruptedReintegrationLeavesTheSecondaryNotUpToDate) {
  // 20 MB/s: the reintegration of the 256 MiB file lasts long enough to be cut in the middle.
  install([](const std::string& dir) { setConfig(dir, "<rfs>", "<rfs reiallowedbw=\"20000\">"); });
  ASSERT_EQ(n1_->halo({"prim", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "ALONE");
  populate(*n1_, 256);
  ASSERT_EQ(n2_->halo({"start", "-m", kModule}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return logHas(*n2_, "Reintegration from the primary begins"); }));
  n2_->powerOff();
  std::string why;
  ASSERT_TRUE(n2_->setLink("eth0", true));
  ASSERT_TRUE(n2_->startDaemon(&why)) << why;
  auto r = n2_->halo({"prim", "-m", kModule});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("stopped during reintegration"));
  EXPECT_THAT(r.output, HasSubstr("primforce"));
  EXPECT_THAT(n2_->halo({"get", "-m", kModule, "-r", "rfs.uptodate"}).output, HasSubstr("down"));
  EXPECT_THAT(n1_->halo({"get", "-m", kModule, "-r", "rfs.uptodate"}).output, HasSubstr("up"));
  // With the primary running, a start reintegrates it again, to the end.
  ASSERT_EQ(n2_->halo({"start", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "SECOND", 180);
  waitState(*n1_, "PRIM");
  expectIdentical(*n2_);
  // Stopped in the middle once more, with the primary gone: primforce forces.
  ASSERT_EQ(n2_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "STOP");
  ASSERT_EQ(n1_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "STOP");
  ASSERT_EQ(n2_->halo({"primforce", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "ALONE");
}

TEST_F(RfsFixture, FullsyncSendsEveryFileWhole) {
  install();
  startPair();
  populate(*n1_, 16);
  ASSERT_EQ(n2_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "STOP");
  auto r = n2_->halo({"second", "fullsync", "-m", kModule});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  waitState(*n2_, "SECOND", 120);
  EXPECT_TRUE(logHas(*n1_, "fullsync: this reintegration sends every file whole"));
  EXPECT_TRUE(logHas(*n2_, "fullsync: every file sent whole"));
  expectIdentical(*n2_);
  // The primary's way: `prim fullsync`, and the next secondary gets every file whole too.
  ASSERT_EQ(n2_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "STOP");
  ASSERT_EQ(n1_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "STOP");
  ASSERT_EQ(n1_->halo({"prim", "fullsync", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "ALONE");
  ASSERT_EQ(n2_->halo({"start", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "SECOND", 120);
  EXPECT_EQ(occurrences(*n1_, "fullsync: this reintegration sends every file whole"), 2);
  expectIdentical(*n1_);
}

// Reference 2.2 (nfsbox failure): the primary goes on ALONE without replication, its peer waits;
// stop and start of the primary replicate again.
TEST_F(RfsFixture, ADeadReplicationProcessLeavesThePrimaryAloneDegraded) {
  install();
  startPair();
  const pid_t rfs = n1_->readPid(n1_->root() + "/run/halo/modules/web.rfs.pid");
  ASSERT_GT(rfs, 1);
  ASSERT_TRUE(killPid(rfs, SIGKILL));
  waitState(*n1_, "ALONE");
  EXPECT_TRUE(eventually([&] { return logHas(*n1_, "ALONE, degraded"); }));
  EXPECT_THAT(n1_->halo({"get", "-m", kModule, "-r", "rfs.degraded"}).output, HasSubstr("up"));
  waitState(*n2_, "WAIT");
  EXPECT_TRUE(eventually([&] { return logHas(*n2_, "degraded_server"); }));
  // The application goes on, on the plain directory.
  EXPECT_TRUE(vipServedBy("198.18.1.1", std::chrono::seconds(10)));
  ASSERT_EQ(onNode(*n1_, "echo after > " + data(*n1_) + "/after").exit_code, 0);
  ASSERT_EQ(n1_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "STOP");
  ASSERT_EQ(n1_->halo({"start", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "PRIM", 60);
  waitState(*n2_, "SECOND");
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/after"), "after\n");
}

TEST_F(RfsFixture, ReadOnlySecondaryNotReplicatedPathsAndTocheck) {
  install([](const std::string& dir) {
    setConfig(dir, "<replicated dir=\"%WEB_DATA%\"/>",
              "<replicated dir=\"%WEB_DATA%\" mode=\"read_only\">"
              "<notreplicated path=\"cache\"/><tocheck path=\"starts.log\"/></replicated>");
  });
  // tocheck: a directory without starts.log is not replicated (an unmounted file system?).
  auto r = n1_->halo({"prim", "-m", kModule});
  ASSERT_EQ(r.exit_code, 0);
  waitState(*n1_, "STOP");
  EXPECT_TRUE(logHas(*n1_, "starts.log (<tocheck>) does not exist"));
  ASSERT_EQ(
      onNode(*n1_, "mkdir -p " + data(*n1_) + " && touch " + data(*n1_) + "/starts.log").exit_code,
      0);
  ASSERT_EQ(onNode(*n2_, "mkdir -p " + data(*n2_) + "/cache && echo mine > " + data(*n2_) +
                             "/cache/local && touch " + data(*n2_) + "/starts.log")
                .exit_code,
            0);
  startPair();
  ASSERT_EQ(onNode(*n1_, "cd " + data(*n1_) +
                             " && mkdir -p cache && echo scratch > cache/s && echo kept > k && "
                             "sync -f .")
                .exit_code,
            0);
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/k"), "kept\n");
  EXPECT_FALSE(std::filesystem::exists(data(*n2_) + "/cache/s"));
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/cache/local"), "mine\n");
  // On the secondary, applications see the directory read-only.
  r = onNode(*n2_, "echo x > " + data(*n2_) + "/k");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("Read-only file system"));
  EXPECT_EQ(n2_->readFile(data(*n2_) + "/k"), "kept\n");
}

}  // namespace
}  // namespace halo::test
