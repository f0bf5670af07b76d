// Replication end to end on one machine: a FUSE mount over the "primary" directory feeds the
// stream to a real TCP link whose receiver applies it to the "secondary" directory; real
// workloads run through the mount, then the two trees are compared block by block. The binary
// lives in its own mount and network namespaces (created first), so neither the mount nor the
// traffic is visible to the rest of the machine.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "rfs/applier.h"
#include "rfs/fuse_fs.h"
#include "rfs/stream_link.h"
#include "rfs/tree_diff.h"
#include "sys/netns_test_util.h"

namespace halo::rfs {
namespace {

class PrivateNamespaces : public ::testing::Environment {
 public:
  void SetUp() override {
    if (unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) {
      GTEST_SKIP() << "needs root (unshare)";
    }
    // Mounts made here stay here.
    mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    ASSERT_TRUE(sys::testutil::bringLoopbackUp());
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PrivateNamespaces);

int sh(const std::string& command) { return std::system(command.c_str()); }

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/halo-repl.XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    tmp_ = templ;
    primary_ = tmp_ + "/primary";
    secondary_ = tmp_ + "/secondary";
    std::filesystem::create_directories(primary_);
    std::filesystem::create_directories(secondary_);
    auto a = Applier::open(secondary_);
    ASSERT_TRUE(a.ok()) << a.status().message();
    applier_ = std::move(*a);
    const int port = 5620;  // the listener sets SO_REUSEADDR: each test can bind it again
    auto r = StreamReceiver::listen({"127.0.0.1", port, 1}, *applier_);
    ASSERT_TRUE(r.ok()) << r.status().message();
    receiver_ = std::move(*r);
    auto s = StreamSender::connect({"127.0.0.1", port, 1, Millis(30000), Millis(2000)}, time_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    sender_ = std::move(*s);
    auto f = FuseFs::mount({primary_, nullptr, false, 8}, *sender_);
    ASSERT_TRUE(f.ok()) << f.status().message();
    fuse_ = std::move(*f);
  }

  void TearDown() override {
    if (fuse_) {
      (void)fuse_->unmount();
    }
    fuse_.reset();
    sender_.reset();
    receiver_.reset();
    applier_.reset();
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }

  // Ends the workload: everything written is flushed through the mount and acknowledged, then
  // the mount goes away and both trees are compared.
  void expectIdenticalTrees() {
    ASSERT_EQ(sh("sync -f '" + primary_ + "'"), 0);
    ASSERT_TRUE(fuse_->unmount().ok());
    fuse_.reset();
    ASSERT_FALSE(sender_->lost()) << sender_->lostReason() << " / " << receiver_->lastError();
    WalkOptions w;
    w.block_size = 64 * 1024;
    auto p = walkTree(primary_, w);
    auto s = walkTree(secondary_, w);
    ASSERT_TRUE(p.ok()) << p.status().message();
    ASSERT_TRUE(s.ok()) << s.status().message();
    DiffOptions d;
    auto diffs = diffTrees(p->manifest, s->manifest, d);
    ASSERT_TRUE(diffs.ok()) << diffs.status().message();
    std::string listed;
    for (size_t i = 0; i < diffs->size() && i < 20; ++i) {
      listed += describeDiff((*diffs)[i]) + "\n";
    }
    EXPECT_TRUE(diffs->empty()) << diffs->size() << " differences, first:\n" << listed;
  }

  RealTimeSource time_;
  std::string tmp_;
  std::string primary_;
  std::string secondary_;
  std::unique_ptr<Applier> applier_;
  std::unique_ptr<StreamReceiver> receiver_;
  std::unique_ptr<StreamSender> sender_;
  std::unique_ptr<FuseFs> fuse_;
};

TEST_F(ReplicationTest, UntarOfARealTree) {
  ASSERT_EQ(sh("tar -C /usr/include -cf '" + tmp_ + "/linux.tar' linux"), 0);
  ASSERT_EQ(sh("tar -C '" + primary_ + "' -xf '" + tmp_ + "/linux.tar'"), 0);
  expectIdenticalTrees();
}

TEST_F(ReplicationTest, SqliteTransactions) {
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

TEST_F(ReplicationTest, RenamesTruncatesSparseFilesLinksAndPermissions) {
  const std::string p = primary_;
  ASSERT_EQ(sh("set -e; cd '" + p +
               "'; mkdir -p a/b/c; echo one > a/b/c/f; "
               "mv a/b z; ln z/c/f hard; ln -s z/c/f soft; ln -s /etc/passwd abs; "
               "truncate -s 1G sparse; dd if=/dev/urandom of=sparse bs=4k seek=1000 count=2 "
               "conv=notrunc status=none; printf 0123456789 > t; truncate -s 4 t; "
               "chmod 0640 t; chown 1234:5678 t; touch -d '2020-01-02 03:04:05' t; mkfifo fifo; "
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

}  // namespace
}  // namespace halo::rfs
