// FuseFs tests: real FUSE mounts over temporary directories, driven by syscalls and by real tools
// (tar, sqlite3, diff). The whole binary lives in its own mount namespace (see
// PrivateMountNamespace below), so the mounts are invisible to the rest of the machine.

#include "rfs/fuse_fs.h"

#include <fcntl.h>
#include <grp.h>  // setgroups
#include <gtest/gtest.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sys/test_temp_dir.h"

namespace halo::rfs {
namespace {

namespace fs = std::filesystem;
using testutil::readFile;
using testutil::TempDir;

// unshare(CLONE_NEWNS) moves only the calling thread into the new namespace (the namespace proxy
// is per task), so it must run before any thread exists: gtest's main thread runs global
// environments before the first test, and gtest itself starts no threads. Every FUSE thread
// and every child (tar, sqlite3, diff) is created later and inherits the private namespace.
class PrivateMountNamespace : public ::testing::Environment {
 public:
  void SetUp() override {
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << std::strerror(errno);
    // Mounts made here must not propagate back to the machine's namespace.
    ASSERT_EQ(::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0)
        << std::strerror(errno);
  }
};
::testing::Environment* const kNamespaceEnv =
    ::testing::AddGlobalTestEnvironment(new PrivateMountNamespace);

// Records every operation in order; counts the waits.
class RecordingSink : public OpSink {
 public:
  explicit RecordingSink(bool keep_data = true) : keep_data_(keep_data) {}
  uint64_t submit(Op op) override {
    std::lock_guard lock(mu_);
    op.seq = ++seq_;
    if (!keep_data_) {
      data_bytes_ += op.data.size();
      op.data.clear();
    }
    ops_.push_back(std::move(op));
    return seq_;
  }
  uint64_t submitAwaited(Op op, AckWait wait) override {
    const uint64_t seq = submit(std::move(op));
    std::lock_guard lock(mu_);
    awaited_[seq] = wait;
    return seq;
  }
  void waitAcked(uint64_t seq) override {
    std::lock_guard lock(mu_);
    EXPECT_LE(seq, seq_);
    waits_.push_back(seq);
  }
  void changesUntrackable() override {}
  std::vector<Op> ops() {
    std::lock_guard lock(mu_);
    return ops_;
  }
  std::vector<uint64_t> waits() {
    std::lock_guard lock(mu_);
    return waits_;
  }
  uint64_t lastSeq() {
    std::lock_guard lock(mu_);
    return seq_;
  }
  // As submitAwaited said (None: submitted with submit).
  AckWait ackWait(uint64_t seq) {
    std::lock_guard lock(mu_);
    auto it = awaited_.find(seq);
    return it == awaited_.end() ? AckWait::None : it->second;
  }

 private:
  const bool keep_data_;
  std::mutex mu_;
  uint64_t seq_ = 0;
  uint64_t data_bytes_ = 0;
  std::vector<Op> ops_;
  std::vector<uint64_t> waits_;
  std::map<uint64_t, AckWait> awaited_;
};

// One line per node below `dir`: path, type and mode, owner, size (not for directories, whose
// size depends on history), mtime, symlink target; sorted.
std::string listing(const std::string& dir, const std::string& out) {
  std::string cmd = "cd " + dir +
                    " && find . -mindepth 1 \\( -type d -printf '%P %M %U %G - %T@\\n' \\)"
                    " -o -printf '%P %M %U %G %s %T@ %l\\n' | sort > " +
                    out;
  if (std::system(cmd.c_str()) != 0) {
    return "listing failed: " + cmd;
  }
  return testutil::readFile(out);
}

int run(const std::string& cmd) {
  int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool mounted(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + dir + " ") != std::string::npos) {
      return true;
    }
  }
  return false;
}

void writeAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    ASSERT_GT(n, 0) << std::strerror(errno);
    done += static_cast<size_t>(n);
  }
}

std::string pattern(size_t size, int seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    s[i] = static_cast<char>((i * 131 + static_cast<size_t>(seed) * 7 + (i >> 12)) & 0xff);
  }
  return s;
}

std::vector<Op> opsFor(const std::vector<Op>& ops, OpType type) {
  std::vector<Op> out;
  for (const Op& op : ops) {
    if (op.type == type) {
      out.push_back(op);
    }
  }
  return out;
}

// A minimal replay of the stream into another directory (what the peer's applier will do), so
// the tests can check that the recorded operations reproduce the tree.
void replay(const std::vector<Op>& ops, const std::string& dir) {
  int root = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(root, 0);
  for (const Op& op : ops) {
    const char* p = op.path.empty() ? "." : op.path.c_str();
    int r = 0;
    switch (op.type) {
      case OpType::Write: {
        int fd = ::openat(root, p, O_WRONLY | O_CLOEXEC);
        r = fd < 0 ? -1
                   : static_cast<int>(::pwrite(fd, op.data.data(), op.data.size(),
                                               static_cast<off_t>(op.offset)));
        if (fd >= 0) {
          ::close(fd);
        }
        r = r < 0 ? -1 : 0;
        break;
      }
      case OpType::Create: {
        int fd = ::openat(root, p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, op.mode & 07777);
        r = fd < 0 ? -1 : ::fchown(fd, op.uid, op.gid);
        if (fd >= 0) {
          ::fchmod(fd, op.mode & 07777);
          ::close(fd);
        }
        break;
      }
      case OpType::Mknod:
        r = ::mknodat(root, p, op.mode, op.rdev);
        break;
      case OpType::Mkdir:
        r = ::mkdirat(root, p, op.mode);
        if (r == 0) {
          ::fchownat(root, p, op.uid, op.gid, 0);
          ::fchmodat(root, p, op.mode, 0);
        }
        break;
      case OpType::Unlink:
        r = ::unlinkat(root, p, 0);
        break;
      case OpType::Rmdir:
        r = ::unlinkat(root, p, AT_REMOVEDIR);
        break;
      case OpType::Rename:
        r = ::renameat2(root, p, root, op.path2.c_str(), static_cast<unsigned>(op.flags));
        break;
      case OpType::Link:
        r = ::linkat(root, p, root, op.path2.c_str(), 0);
        break;
      case OpType::Symlink:
        r = ::symlinkat(op.path2.c_str(), root, p);
        if (r == 0) {
          ::fchownat(root, p, op.uid, op.gid, AT_SYMLINK_NOFOLLOW);
        }
        break;
      case OpType::SetAttr:
        if (op.flags & kSetMode) {
          r |= ::fchmodat(root, p, op.mode, 0);
        }
        if (op.flags & (kSetUid | kSetGid)) {
          r |= ::fchownat(root, p, (op.flags & kSetUid) ? op.uid : static_cast<uid_t>(-1),
                          (op.flags & kSetGid) ? op.gid : static_cast<gid_t>(-1),
                          AT_SYMLINK_NOFOLLOW);
        }
        if (op.flags & kSetSize) {
          int fd = ::openat(root, p, O_WRONLY | O_CLOEXEC);
          r |= fd < 0 ? -1 : ::ftruncate(fd, static_cast<off_t>(op.length));
          if (fd >= 0) {
            ::close(fd);
          }
        }
        if (op.flags & (kSetAtime | kSetMtime)) {
          struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
          if (op.flags & kSetAtime) {
            ts[0] = {op.atime_sec, op.atime_nsec};
          }
          if (op.flags & kSetMtime) {
            ts[1] = {op.mtime_sec, op.mtime_nsec};
          }
          r |= ::utimensat(root, p, ts, AT_SYMLINK_NOFOLLOW);
        }
        break;
      case OpType::Fallocate: {
        int fd = ::openat(root, p, O_WRONLY | O_CLOEXEC);
        r = fd < 0 ? -1
                   : ::fallocate(fd, op.flags, static_cast<off_t>(op.offset),
                                 static_cast<off_t>(op.length));
        if (fd >= 0) {
          ::close(fd);
        }
        break;
      }
      case OpType::SetXattr: {
        std::string full = "/proc/self/fd/" + std::to_string(root) + "/" + op.path;
        r = ::lsetxattr(full.c_str(), op.name.c_str(), op.data.data(), op.data.size(), op.flags);
        break;
      }
      case OpType::RemoveXattr: {
        std::string full = "/proc/self/fd/" + std::to_string(root) + "/" + op.path;
        r = ::lremovexattr(full.c_str(), op.name.c_str());
        break;
      }
      case OpType::Fsync:
        break;
      default:
        ADD_FAILURE() << "the interception submitted a reintegration record";
    }
    EXPECT_EQ(r, 0) << "replay of op " << op.seq << " type " << static_cast<int>(op.type) << " "
                    << op.path << " -> " << op.path2 << ": " << std::strerror(errno);
  }
  ::close(root);
}

class FuseFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    dir_ = tmp_.file("data");
    fs::create_directory(dir_);
  }
  void TearDown() override {
    fuse_.reset();
    EXPECT_FALSE(mounted(dir_)) << dir_ << " still mounted";
  }

  void mountFs(std::function<bool(std::string_view)> replicated = nullptr, bool read_only = false) {
    PathFilter filter;
    if (replicated) {
      filter = [replicated](std::string_view p, bool) { return replicated(p); };
    }
    FuseOptions options;
    options.dir = dir_;
    options.replicated = std::move(filter);
    options.read_only = read_only;
    auto r = FuseFs::mount(options, sink_);
    ASSERT_TRUE(r.ok()) << r.status().toString();
    fuse_ = std::move(r).value();
    ASSERT_TRUE(mounted(dir_));
  }
  void unmountFs() {
    ASSERT_TRUE(fuse_->unmount().ok());
    fuse_.reset();
    ASSERT_FALSE(mounted(dir_));
  }
  std::string path(const std::string& rel) const { return dir_ + "/" + rel; }

  TempDir tmp_;
  std::string dir_;
  RecordingSink sink_;
  std::unique_ptr<FuseFs> fuse_;
};

TEST_F(FuseFsTest, BigFileWithMegabyteWrites) {
  mountFs();
  const std::string data = pattern(10 << 20, 1);
  int fd = ::open(path("big").c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  for (size_t off = 0; off < data.size(); off += 1 << 20) {
    writeAll(fd, data.substr(off, 1 << 20));
  }
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(readFile(path("big")), data);

  auto ops = sink_.ops();
  ASSERT_FALSE(ops.empty());
  EXPECT_EQ(ops.front().type, OpType::Create);
  EXPECT_EQ(ops.front().path, "big");
  EXPECT_EQ(ops.front().mode, S_IFREG | 0644u);
  // The writes, replayed in order, give the file (the kernel may merge or split them).
  std::string rebuilt;
  size_t max_write = 0;
  for (const Op& op : opsFor(ops, OpType::Write)) {
    EXPECT_EQ(op.path, "big");
    max_write = std::max(max_write, op.data.size());
    if (rebuilt.size() < op.offset + op.data.size()) {
      rebuilt.resize(op.offset + op.data.size());
    }
    rebuilt.replace(op.offset, op.data.size(), op.data);
  }
  EXPECT_EQ(rebuilt, data);
  EXPECT_LE(max_write, kMaxData);
  std::cout << "largest write request: " << max_write << " bytes\n";
  // close() of the written file waited for the last write.
  auto waits = sink_.waits();
  ASSERT_FALSE(waits.empty());
  EXPECT_GE(waits.back(), opsFor(ops, OpType::Write).back().seq);

  unmountFs();
  EXPECT_EQ(readFile(path("big")), data);
}

TEST_F(FuseFsTest, RenameDirectoryWhileFileOpen) {
  mountFs();
  fs::create_directories(path("a/b/c"));
  testutil::writeFile(path("a/b/c/f1"), "one");
  int fd = ::open(path("a/b/c/f2").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::rename(path("a").c_str(), path("z").c_str()), 0);
  writeAll(fd, "hello");
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(readFile(path("z/b/c/f2")), "hello");
  EXPECT_EQ(readFile(path("z/b/c/f1")), "one");
  EXPECT_FALSE(fs::exists(path("a")));

  // RENAME_NOREPLACE refuses an existing target; RENAME_EXCHANGE swaps.
  testutil::writeFile(path("x"), "X");
  testutil::writeFile(path("y"), "Y");
  EXPECT_NE(::renameat2(AT_FDCWD, path("x").c_str(), AT_FDCWD, path("y").c_str(), RENAME_NOREPLACE),
            0);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::renameat2(AT_FDCWD, path("x").c_str(), AT_FDCWD, path("y").c_str(), RENAME_EXCHANGE),
            0);
  EXPECT_EQ(readFile(path("x")), "Y");
  EXPECT_EQ(readFile(path("y")), "X");

  auto ops = sink_.ops();
  std::vector<std::string> mkdirs;
  for (const Op& op : opsFor(ops, OpType::Mkdir)) {
    mkdirs.push_back(op.path);
  }
  EXPECT_EQ(mkdirs, (std::vector<std::string>{"a", "a/b", "a/b/c"}));
  auto renames = opsFor(ops, OpType::Rename);
  ASSERT_EQ(renames.size(), 2u);
  EXPECT_EQ(renames[0].path, "a");
  EXPECT_EQ(renames[0].path2, "z");
  EXPECT_EQ(renames[1].flags, static_cast<int32_t>(RENAME_EXCHANGE));
  bool wrote_new_path = false;
  for (const Op& op : opsFor(ops, OpType::Write)) {
    if (op.data == "hello") {
      EXPECT_EQ(op.path, "z/b/c/f2");
      EXPECT_GT(op.seq, renames[0].seq);
      wrote_new_path = true;
    }
  }
  EXPECT_TRUE(wrote_new_path);
  auto fsyncs = opsFor(ops, OpType::Fsync);
  ASSERT_EQ(fsyncs.size(), 1u);
  EXPECT_EQ(fsyncs[0].path, "z/b/c/f2");

  unmountFs();
  EXPECT_EQ(readFile(path("z/b/c/f2")), "hello");
  TempDir replica;
  replay(ops, replica.path());
  EXPECT_EQ(run("diff -r --no-dereference " + dir_ + " " + replica.path()), 0);
}

TEST_F(FuseFsTest, WritesToUnlinkedOpenFileAreLocalOnly) {
  mountFs();
  int fd = ::open(path("gone").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  writeAll(fd, "before");
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::unlink(path("gone").c_str()), 0);
  uint64_t unlink_seq = sink_.lastSeq();
  writeAll(fd, std::string(100000, 'a'));
  EXPECT_EQ(::fsync(fd), 0);
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 100006);
  EXPECT_EQ(st.st_nlink, 0u);
  char buf[6];
  EXPECT_EQ(::pread(fd, buf, 6, 0), 6);
  EXPECT_EQ(std::string(buf, 6), "before");
  EXPECT_EQ(::close(fd), 0);

  auto ops = sink_.ops();
  ASSERT_EQ(ops[unlink_seq - 1].type, OpType::Unlink);
  for (const Op& op : ops) {
    if (op.seq > unlink_seq) {
      ADD_FAILURE() << "replicated after unlink: " << static_cast<int>(op.type) << " " << op.path;
    }
  }
  unmountFs();
  EXPECT_FALSE(fs::exists(path("gone")));
}

TEST_F(FuseFsTest, HardLinkSymlinkAndAttributes) {
  mountFs();
  testutil::writeFile(path("f"), "data");
  ASSERT_EQ(::link(path("f").c_str(), path("g").c_str()), 0);
  struct stat st;
  ASSERT_EQ(::stat(path("g").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(::unlink(path("f").c_str()), 0);
  // The inode is still known by its other link: writes through it are replicated under "g".
  int fd = ::open(path("g").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  writeAll(fd, "+more");
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(readFile(path("g")), "data+more");

  ASSERT_EQ(::symlink("target/x", path("l").c_str()), 0);
  char buf[64];
  ssize_t n = ::readlink(path("l").c_str(), buf, sizeof(buf));
  ASSERT_EQ(n, 8);
  EXPECT_EQ(std::string(buf, 8), "target/x");

  ASSERT_EQ(::chmod(path("g").c_str(), 0640), 0);
  ASSERT_EQ(::chown(path("g").c_str(), 1234, 5678), 0);
  struct timespec ts[2] = {{1000000000, 123456789}, {0, UTIME_NOW}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path("g").c_str(), ts, 0), 0);
  ASSERT_EQ(::truncate(path("g").c_str(), 100), 0);
  ASSERT_EQ(::lchown(path("l").c_str(), 42, 43), 0);
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  ASSERT_EQ(::stat(path("g").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_size, 100);
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);

  auto ops = sink_.ops();
  auto links = opsFor(ops, OpType::Link);
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0].path, "f");
  EXPECT_EQ(links[0].path2, "g");
  // With the writeback cache the kernel writes whole dirty ranges: the append arrives as the
  // page's bytes, named by the remaining link.
  bool appended = false;
  for (const Op& op : opsFor(ops, OpType::Write)) {
    if (op.offset <= 4 && op.offset + op.data.size() >= 9 &&
        op.data.substr(4 - op.offset, 5) == "+more") {
      EXPECT_EQ(op.path, "g");
      appended = true;
    }
  }
  EXPECT_TRUE(appended);
  auto symlinks = opsFor(ops, OpType::Symlink);
  ASSERT_EQ(symlinks.size(), 1u);
  EXPECT_EQ(symlinks[0].path, "l");
  EXPECT_EQ(symlinks[0].path2, "target/x");
  int32_t seen = 0;
  for (const Op& op : opsFor(ops, OpType::SetAttr)) {
    if (op.path != "g") {
      continue;
    }
    seen |= op.flags;
    if (op.flags & kSetMode) {
      EXPECT_EQ(op.mode, 0640u);
    }
    if (op.flags & kSetUid) {
      EXPECT_EQ(op.uid, 1234u);
    }
    if (op.flags & kSetAtime) {
      EXPECT_EQ(op.atime_sec, 1000000000);
      EXPECT_EQ(op.atime_nsec, 123456789);
      EXPECT_NE(op.mtime_nsec, UTIME_NOW);  // resolved to the time the file got
    }
    if (op.flags & kSetSize) {
      EXPECT_EQ(op.length, 100u);
    }
  }
  EXPECT_EQ(seen & (kSetMode | kSetUid | kSetGid | kSetSize | kSetAtime | kSetMtime),
            kSetMode | kSetUid | kSetGid | kSetSize | kSetAtime | kSetMtime);
  auto mknods = opsFor(ops, OpType::Mknod);
  ASSERT_EQ(mknods.size(), 1u);
  EXPECT_EQ(mknods[0].mode, S_IFIFO | 0600u);
  ASSERT_EQ(::unlink(path("fifo").c_str()), 0);  // diff cannot compare fifos
  ops = sink_.ops();

  unmountFs();
  ASSERT_EQ(::lstat(path("l").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_uid, 42u);
  ASSERT_EQ(::stat(path("g").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_size, 100);
  TempDir replica;
  replay(ops, replica.path());
  EXPECT_EQ(run("diff -r --no-dereference " + dir_ + " " + replica.path()), 0);
  struct stat rst;
  ASSERT_EQ(::stat((replica.path() + "/g").c_str(), &rst), 0);
  EXPECT_EQ(rst.st_mtim.tv_sec, st.st_mtim.tv_sec);
  EXPECT_EQ(rst.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
}

TEST_F(FuseFsTest, CreatorOwnsNewNodes) {
  ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);  // let the user reach the mount
  mountFs();
  fs::create_directory(path("pub"));
  ASSERT_EQ(::chmod(path("pub").c_str(), 01777), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // A normal user creates a file and a directory: they are theirs, with their mode.
    ::umask(002);
    if (::setgid(2000) != 0 || ::setuid(1000) != 0) {
      ::_exit(10);
    }
    int fd = ::open((dir_ + "/pub/mine").c_str(), O_CREAT | O_WRONLY, 0664);
    if (fd < 0 || ::mkdir((dir_ + "/pub/d").c_str(), 0775) != 0) {
      ::_exit(11);
    }
    ::close(fd);
    // default_permissions: a user cannot write where the mode forbids it.
    ::_exit(::open((dir_ + "/x").c_str(), O_CREAT | O_WRONLY, 0600) < 0 && errno == EACCES ? 0
                                                                                           : 12);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  struct stat st;
  ASSERT_EQ(::stat(path("pub/mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(st.st_mode & 07777, 0664u);
  ASSERT_EQ(::stat(path("pub/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_mode & 07777, 0775u);
  auto creates = opsFor(sink_.ops(), OpType::Create);
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_EQ(creates[0].uid, 1000u);
  EXPECT_EQ(creates[0].gid, 2000u);
  EXPECT_EQ(creates[0].mode, S_IFREG | 0664u);
}

// The kernel leaves set-ID bits and capabilities to the file system (FUSE_HANDLE_KILLPRIV_V2,
// fuse_raw.cc): it stops asking for security.capability before each write, and what a write or
// truncation must remove still goes, on the peer too.
TEST_F(FuseFsTest, SetIdBitsAndCapabilitiesGoWithoutAQueryPerWrite) {
  ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);  // let the user reach the mount
  mountFs();
  testutil::writeFile(path("w"), "");  // the mount's first request waited for its INIT
  if (!fuse_->kernelOffersKillPriv()) {
    GTEST_SKIP() << "this kernel (before 5.11) does not offer FUSE_HANDLE_KILLPRIV_V2";
  }
  ASSERT_TRUE(fuse_->handlesKillPriv()) << "the kernel did not take FUSE_HANDLE_KILLPRIV_V2";
  const uint64_t queries = fuse_->xattrReads();
  int fd = ::open(path("w").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(::pwrite(fd, "x", 1, i), 1);
  }
  ::close(fd);
  // One for the inode's first write; a second only if its attributes expired meanwhile.
  EXPECT_LE(fuse_->xattrReads() - queries, 2u) << "one query per write";

  // A capability still goes with the file's next write (setting a security attribute makes the
  // kernel ask again for that inode).
  testutil::writeFile(path("cap"), "c");
  const uint32_t cap[5] = {0x02000000u, 1u << 10, 0, 0, 0};  // revision 2: cap_net_bind_service
  ASSERT_EQ(::setxattr(path("cap").c_str(), "security.capability", cap, sizeof(cap), 0), 0)
      << std::strerror(errno);
  ASSERT_EQ(::getxattr(path("cap").c_str(), "security.capability", nullptr, 0),
            static_cast<ssize_t>(sizeof(cap)));
  fd = ::open(path("cap").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "d", 1, 1), 1);
  ASSERT_EQ(::fsync(fd), 0);
  ::close(fd);
  EXPECT_EQ(::getxattr(path("cap").c_str(), "security.capability", nullptr, 0), -1);
  EXPECT_EQ(errno, ENODATA);

  // Set-ID bits: an unprivileged writer cannot keep them (set-group-ID only when group-executable),
  // root can.
  std::map<std::string, mode_t> want = {{"suid", 0777},   {"noexec", 02767}, {"trunc", 0777},
                                        {"otrunc", 0777}, {"falloc", 0777},  {"root", 06777}};
  for (const auto& [name, mode] : want) {
    testutil::writeFile(path(name), "0123");
    ASSERT_EQ(::chmod(path(name).c_str(), name == "noexec" ? 06767 : 06777), 0);
  }
  const size_t ops_before = sink_.ops().size();
  const std::string suid = path("suid");
  const std::string noexec = path("noexec");
  const std::string otrunc = path("otrunc");
  const std::string falloc = path("falloc");
  const std::string trunc = path("trunc");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // A user in none of root's groups, and no allocation here (the parent has threads).
    if (::setgroups(0, nullptr) != 0 || ::setgid(2000) != 0 || ::setuid(1000) != 0) {
      ::_exit(10);
    }
    for (const std::string* name : {&suid, &noexec}) {
      int wfd = ::open(name->c_str(), O_WRONLY);
      if (wfd < 0 || ::pwrite(wfd, "u", 1, 0) != 1 || ::close(wfd) != 0) {
        ::_exit(11);
      }
    }
    int tfd = ::open(otrunc.c_str(), O_WRONLY | O_TRUNC);
    if (tfd < 0 || ::close(tfd) != 0) {
      ::_exit(12);
    }
    tfd = ::open(falloc.c_str(), O_WRONLY);
    if (tfd < 0 || ::fallocate(tfd, 0, 0, 8192) != 0 || ::close(tfd) != 0) {
      ::_exit(13);
    }
    ::_exit(::truncate(trunc.c_str(), 1) == 0 ? 0 : 14);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  fd = ::open(path("root").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "r", 1, 0), 1);
  ASSERT_EQ(::fsync(fd), 0);
  ::close(fd);
  for (const auto& [name, mode] : want) {
    // The mode alone, as a permission check sees it: the kernel's cached mode must not be
    // the old one (a full stat would refresh it with the size).
    struct statx stx;
    ASSERT_EQ(::statx(AT_FDCWD, path(name).c_str(), 0, STATX_MODE, &stx), 0);
    EXPECT_EQ(stx.stx_mode & 07777, mode) << name << " (cached)";
    struct stat st;
    ASSERT_EQ(::stat(path(name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, mode) << name;
  }
  EXPECT_EQ(readFile(path("suid")), "u123");
  EXPECT_EQ(readFile(path("trunc")), "0");
  EXPECT_EQ(readFile(path("otrunc")), "");
  // The peer gets each new mode, which its own writes as root would not make.
  std::map<std::string, mode_t> sent;
  const auto ops = sink_.ops();
  for (const Op& op : opsFor({ops.begin() + ops_before, ops.end()}, OpType::SetAttr)) {
    if ((op.flags & kSetMode) != 0) {
      sent[op.path] = op.mode & 07777;
    }
  }
  want.erase("root");
  EXPECT_EQ(sent, want);
}

TEST_F(FuseFsTest, XattrsAndFallocate) {
  mountFs();
  testutil::writeFile(path("f"), "x");
  ASSERT_EQ(::setxattr(path("f").c_str(), "user.k", "value", 5, 0), 0) << std::strerror(errno);
  char buf[64];
  ASSERT_EQ(::getxattr(path("f").c_str(), "user.k", buf, sizeof(buf)), 5);
  EXPECT_EQ(std::string(buf, 5), "value");
  EXPECT_EQ(::getxattr(path("f").c_str(), "user.k", nullptr, 0), 5);
  ssize_t n = ::listxattr(path("f").c_str(), buf, sizeof(buf));
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf, static_cast<size_t>(n)).find("user.k"), std::string::npos);
  EXPECT_EQ(::setxattr(path("f").c_str(), "user.k", "v2", 2, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::setxattr(path("f").c_str(), "user.gone", "1", 1, 0), 0);
  ASSERT_EQ(::removexattr(path("f").c_str(), "user.gone"), 0);
  EXPECT_EQ(::getxattr(path("f").c_str(), "user.gone", buf, sizeof(buf)), -1);
  EXPECT_EQ(run("setfattr -n user.tool -v fromtool " + path("f")), 0);
  EXPECT_EQ(run("getfattr -n user.tool " + path("f") + " >/dev/null"), 0);

  int fd = ::open(path("f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fallocate(fd, 0, 0, 1 << 20), 0) << std::strerror(errno);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), 0);
  ASSERT_EQ(::close(fd), 0);
  struct stat st;
  ASSERT_EQ(::stat(path("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);

  auto ops = sink_.ops();
  auto sets = opsFor(ops, OpType::SetXattr);
  ASSERT_EQ(sets.size(), 3u);  // the refused XATTR_CREATE is not in the stream
  EXPECT_EQ(sets[0].name, "user.k");
  EXPECT_EQ(sets[0].data, "value");
  auto removes = opsFor(ops, OpType::RemoveXattr);
  ASSERT_EQ(removes.size(), 1u);
  EXPECT_EQ(removes[0].name, "user.gone");
  auto fallocs = opsFor(ops, OpType::Fallocate);
  ASSERT_EQ(fallocs.size(), 2u);
  EXPECT_EQ(fallocs[1].flags, FALLOC_FL_KEEP_SIZE);
  EXPECT_EQ(fallocs[1].offset, 1u << 20);

  // The replicated directory itself (the mount's root).
  ASSERT_EQ(::setxattr(dir_.c_str(), "user.root", "r", 1, 0), 0) << std::strerror(errno);
  ASSERT_EQ(::getxattr(dir_.c_str(), "user.root", buf, sizeof(buf)), 1);
  EXPECT_EQ(opsFor(sink_.ops(), OpType::SetXattr).back().path, "");

  unmountFs();
  ASSERT_EQ(::getxattr(path("f").c_str(), "user.tool", buf, sizeof(buf)), 8);
  ASSERT_EQ(::getxattr(dir_.c_str(), "user.root", buf, sizeof(buf)), 1);
}

TEST_F(FuseFsTest, TarExtractMatchesDirectExtraction) {
  const std::string tarball = tmp_.file("linux.tar");
  ASSERT_EQ(run("tar -cf " + tarball + " -C /usr/include linux"), 0);
  const std::string direct = tmp_.file("direct");
  fs::create_directory(direct);
  ASSERT_EQ(run("tar -xf " + tarball + " -C " + direct), 0);
  mountFs();
  ASSERT_EQ(run("tar -xf " + tarball + " -C " + dir_), 0);
  EXPECT_EQ(run("diff -r --no-dereference " + direct + " " + dir_), 0);
  auto ops = sink_.ops();
  EXPECT_GT(opsFor(ops, OpType::Create).size(), 100u);
  unmountFs();
  EXPECT_EQ(run("diff -r --no-dereference " + direct + " " + dir_), 0);
  TempDir replica;
  replay(ops, replica.path());
  EXPECT_EQ(run("diff -r --no-dereference " + direct + " " + replica.path()), 0);
  // Modes, owners and times too (tar sets them through setattr after writing).
  const std::string expected = listing(direct, tmp_.file("l1"));
  EXPECT_GT(expected.size(), 10000u);
  EXPECT_EQ(listing(dir_, tmp_.file("l2")), expected);
  EXPECT_EQ(listing(replica.path(), tmp_.file("l3")), expected);
}

TEST_F(FuseFsTest, SqliteTransactions) {
  mountFs();
  const std::string script = tmp_.file("script.sql");
  {
    std::ofstream out(script);
    out << "PRAGMA journal_mode=DELETE;\nCREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);\n";
    for (int i = 0; i < 200; ++i) {
      out << "BEGIN; INSERT INTO t(v) VALUES ('row " << i
          << "' || hex(randomblob(200))); UPDATE t SET v = v || 'x' WHERE id % 7 = " << i % 7
          << "; COMMIT;\n";
    }
  }
  ASSERT_EQ(run("sqlite3 " + path("db.sqlite") + " < " + script + " > /dev/null"), 0);
  const std::string out = tmp_.file("out.txt");
  ASSERT_EQ(run("sqlite3 " + path("db.sqlite") +
                " 'PRAGMA integrity_check; SELECT count(*) FROM t;' > " + out),
            0);
  EXPECT_EQ(readFile(out), "ok\n200\n");
  auto ops = sink_.ops();
  EXPECT_GE(opsFor(ops, OpType::Fsync).size(), 200u);
  unmountFs();
  ASSERT_EQ(run("sqlite3 " + path("db.sqlite") + " 'PRAGMA integrity_check;' > " + out), 0);
  EXPECT_EQ(readFile(out), "ok\n");
  TempDir replica;
  replay(ops, replica.path());
  EXPECT_EQ(run("cmp " + path("db.sqlite") + " " + replica.path() + "/db.sqlite"), 0);
}

TEST_F(FuseFsTest, NotReplicatedPathsAreLocalOnly) {
  mountFs([](std::string_view p) { return p != "scratch" && !p.starts_with("scratch/"); });
  fs::create_directories(path("scratch/sub"));
  testutil::writeFile(path("scratch/sub/f"), "local");
  ASSERT_EQ(::rename(path("scratch/sub/f").c_str(), path("scratch/g").c_str()), 0);
  ASSERT_EQ(::setxattr(path("scratch/g").c_str(), "user.a", "1", 1, 0), 0);
  fs::create_directories(path("keep"));
  testutil::writeFile(path("keep/f"), "replicated");
  auto ops = sink_.ops();
  for (const Op& op : ops) {
    EXPECT_FALSE(op.path.starts_with("scratch")) << op.path;
  }
  ASSERT_GE(ops.size(), 3u);
  EXPECT_EQ(ops[0].type, OpType::Mkdir);
  EXPECT_EQ(ops[0].path, "keep");
  unmountFs();
  EXPECT_EQ(readFile(path("scratch/g")), "local");
  EXPECT_EQ(readFile(path("keep/f")), "replicated");
}

TEST_F(FuseFsTest, WaitsForNamespaceOpsAndFsyncNotPlainWrites) {
  mountFs();
  // O_DIRECT bypasses the writeback cache, so each write reaches us at once.
  int fd = ::open(path("f").c_str(), O_CREAT | O_WRONLY | O_DIRECT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  size_t waits_after_create = sink_.waits().size();
  EXPECT_EQ(waits_after_create, 1u);
  const std::string block = pattern(1 << 20, 3);
  for (int i = 0; i < 4; ++i) {
    writeAll(fd, block);
  }
  // The kernel may split direct writes; together they are the 4 MiB written.
  size_t written = 0;
  for (const Op& op : opsFor(sink_.ops(), OpType::Write)) {
    written += op.data.size();
  }
  EXPECT_EQ(written, 4u << 20);
  EXPECT_EQ(sink_.waits().size(), waits_after_create);  // plain writes do not wait
  for (const Op& op : opsFor(sink_.ops(), OpType::Write)) {
    EXPECT_EQ(sink_.ackWait(op.seq), AckWait::None) << "a direct write asks for no acknowledgement";
  }
  ASSERT_EQ(::fsync(fd), 0);
  auto waits = sink_.waits();
  ASSERT_EQ(waits.size(), waits_after_create + 1);
  EXPECT_EQ(waits.back(), sink_.lastSeq());
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(sink_.waits().size(), waits_after_create + 1);  // nothing written since fsync

  ASSERT_EQ(::mkdir(path("d").c_str(), 0755), 0);
  ASSERT_EQ(::rename(path("f").c_str(), path("d/f").c_str()), 0);
  ASSERT_EQ(::unlink(path("d/f").c_str()), 0);
  ASSERT_EQ(::rmdir(path("d").c_str()), 0);
  EXPECT_EQ(sink_.waits().size(), waits_after_create + 5);

  // O_SYNC: the write returns once the peer has it.
  fd = ::open(path("s").c_str(), O_CREAT | O_WRONLY | O_SYNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  size_t before = sink_.waits().size();
  writeAll(fd, "sync");
  EXPECT_GT(sink_.waits().size(), before);
  EXPECT_EQ(sink_.waits().back(), sink_.lastSeq());
  const Op sync_write = opsFor(sink_.ops(), OpType::Write).back();
  EXPECT_EQ(sync_write.path, "s");
  EXPECT_NE(sink_.ackWait(sync_write.seq), AckWait::None);
  ASSERT_EQ(::close(fd), 0);

  // A plain written file waits on close; the page cache's write-back of it, which comes right
  // before, asks for its acknowledgement already.
  fd = ::open(path("p").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  writeAll(fd, "plain");
  before = sink_.waits().size();
  ASSERT_EQ(::close(fd), 0);
  EXPECT_GT(sink_.waits().size(), before);
  const std::vector<Op> writes = opsFor(sink_.ops(), OpType::Write);
  ASSERT_FALSE(writes.empty());
  EXPECT_EQ(writes.back().path, "p");
  EXPECT_EQ(sink_.ackWait(writes.back().seq), AckWait::Now);

  // Once a file was fsynced, its write-backs are taken for its next fsync, which sends them:
  // they ask for their acknowledgement but may wait for that fsync's record.
  fd = ::open(path("q").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  writeAll(fd, "one");
  ASSERT_EQ(::fsync(fd), 0);
  writeAll(fd, "two");
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::close(fd), 0);
  std::vector<Op> q;
  for (const Op& op : opsFor(sink_.ops(), OpType::Write)) {
    if (op.path == "q") {
      q.push_back(op);
    }
  }
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(sink_.ackWait(q[0].seq), AckWait::Now);  // not fsynced yet when written back
  EXPECT_EQ(sink_.ackWait(q[1].seq), AckWait::Later);
}

TEST_F(FuseFsTest, ReadOnlyRefusesChanges) {
  testutil::writeFile(path("f"), "content");
  mountFs(nullptr, /*read_only=*/true);
  EXPECT_EQ(readFile(path("f")), "content");
  EXPECT_LT(::open(path("new").c_str(), O_CREAT | O_WRONLY, 0644), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_LT(::open(path("f").c_str(), O_WRONLY), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::mkdir(path("d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::unlink(path("f").c_str()), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::chmod(path("f").c_str(), 0600), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_TRUE(sink_.ops().empty());
}

TEST_F(FuseFsTest, ManyFilesDoNotHoldDescriptors) {
  mountFs();
  for (int i = 0; i < 3000; ++i) {
    testutil::writeFile(path("many/f" + std::to_string(i)), "x");
  }
  size_t count = 0;
  for (const auto& e : fs::directory_iterator(path("many"))) {
    (void)e;
    ++count;
  }
  EXPECT_EQ(count, 3000u);
  size_t fds = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++fds;
  }
  EXPECT_LT(fds, 200u);
}

TEST_F(FuseFsTest, ConcurrentNamespaceChangesReplayToTheSameTree) {
  mountFs();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([this, t] {
      std::string base = path("t" + std::to_string(t));
      fs::create_directories(base + "/in");
      for (int i = 0; i < 100; ++i) {
        std::string f = base + "/in/f" + std::to_string(i);
        testutil::writeFile(f, pattern(1000 + static_cast<size_t>(i) * 37, t));
        if (i % 3 == 0) {
          fs::rename(f, base + "/r" + std::to_string(i));
        } else if (i % 3 == 1) {
          fs::remove(f);
        }
      }
      fs::rename(base + "/in", base + "/out");
      // Every thread also moves a directory another thread works in, back and forth.
      std::string other = path("t" + std::to_string((t + 1) % 8));
      std::error_code ec;
      fs::rename(other + "/out", other + "/moved", ec);
      fs::rename(other + "/moved", other + "/out", ec);
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  auto ops = sink_.ops();
  for (size_t i = 0; i < ops.size(); ++i) {
    EXPECT_EQ(ops[i].seq, i + 1);
  }
  unmountFs();
  TempDir replica;
  replay(ops, replica.path());
  EXPECT_EQ(run("diff -r --no-dereference " + dir_ + " " + replica.path()), 0);
}

TEST_F(FuseFsTest, PathsSurviveKernelForgets) {
  mountFs();
  fs::create_directories(path("a/b/c/d"));
  testutil::writeFile(path("a/b/c/d/file"), "v1");
  ASSERT_EQ(::link(path("a/b/c/d/file").c_str(), path("a/hard").c_str()), 0);
  for (int i = 0; i < 500; ++i) {
    testutil::writeFile(path("a/b/f" + std::to_string(i)), "x");
  }
  // Makes the kernel drop its dentries and inodes, so it sends us FORGETs for most nodes.
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "2";
  ASSERT_EQ(::rename(path("a").c_str(), path("a2").c_str()), 0);
  testutil::writeFile(path("a2/b/c/d/file"), "v2");
  std::ofstream("/proc/sys/vm/drop_caches") << "2";
  EXPECT_EQ(readFile(path("a2/hard")), "v2");
  int fd = ::open(path("a2/hard").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  writeAll(fd, "+");
  ASSERT_EQ(::close(fd), 0);
  auto writes = opsFor(sink_.ops(), OpType::Write);
  ASSERT_FALSE(writes.empty());
  // Opened by its second name: the op names whichever link the table knows, both are valid.
  EXPECT_TRUE(writes.back().path == "a2/hard" || writes.back().path == "a2/b/c/d/file")
      << writes.back().path;
  auto ops = sink_.ops();
  unmountFs();
  EXPECT_EQ(readFile(path("a2/b/c/d/file")), "v2+");
  TempDir replica;
  replay(ops, replica.path());
  EXPECT_EQ(run("diff -r --no-dereference " + dir_ + " " + replica.path()), 0);
}

TEST_F(FuseFsTest, Throughput) {
  constexpr size_t kChunk = 1 << 20;
  constexpr size_t kTotal = 256u << 20;
  const std::string block = pattern(kChunk, 5);
  auto measure = [&](const std::string& file) {
    auto start = std::chrono::steady_clock::now();
    int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    for (size_t done = 0; done < kTotal; done += kChunk) {
      writeAll(fd, block);
    }
    EXPECT_EQ(::fsync(fd), 0);
    EXPECT_EQ(::close(fd), 0);
    std::chrono::duration<double> secs = std::chrono::steady_clock::now() - start;
    return static_cast<double>(kTotal) / 1e6 / secs.count();
  };
  // Direct before and after, so page-cache and disk warm-up do not favor either side.
  const std::string direct_file = tmp_.file("direct.bin");
  double direct = measure(direct_file);
  ::unlink(direct_file.c_str());
  RecordingSink light(/*keep_data=*/false);
  FuseOptions options;
  options.dir = dir_;
  auto r = FuseFs::mount(options, light);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  double through = measure(path("bench.bin"));
  ASSERT_TRUE((*r)->unmount().ok());
  double direct_again = measure(direct_file);
  ::unlink(direct_file.c_str());
  std::cout << "throughput 256 MiB sequential 1 MiB writes + fsync: direct " << direct << " / "
            << direct_again << " MB/s, through FUSE " << through << " MB/s\n";
}

}  // namespace
}  // namespace halo::rfs
