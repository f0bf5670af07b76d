#include "rfs/applier.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "sys/test_temp_dir.h"

namespace halo::rfs {
namespace {

using testutil::readFile;
using testutil::TempDir;
using testutil::writeFile;

template <typename F>
Op makeOp(OpType type, std::string path, F set) {
  Op op;
  op.type = type;
  op.path = std::move(path);
  set(op);
  return op;
}
Op makeOp(OpType type, std::string path) {
  return makeOp(type, std::move(path), [](Op&) {});
}
Op writeOp(std::string path, uint64_t offset, std::string data) {
  return makeOp(OpType::Write, std::move(path), [&](Op& o) {
    o.offset = offset;
    o.data = std::move(data);
  });
}
Op createOp(std::string path, uint32_t perms = 0644) {
  return makeOp(OpType::Create, std::move(path), [&](Op& o) { o.mode = S_IFREG | perms; });
}
Op mkdirOp(std::string path, uint32_t perms = 0755) {
  return makeOp(OpType::Mkdir, std::move(path), [&](Op& o) { o.mode = perms; });
}
Op twoPathOp(OpType type, std::string path, std::string path2, int32_t flags = 0) {
  return makeOp(type, std::move(path), [&](Op& o) {
    o.path2 = std::move(path2);
    o.flags = flags;
  });
}

struct stat lstatOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

std::string getXattr(const std::string& path, const std::string& name) {
  char buf[256];
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof(buf));
  return n < 0 ? "<errno " + std::to_string(errno) + ">" : std::string(buf, n);
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class ApplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    root_ = tmp_.file("root");
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    openApplier({});
  }

  void openApplier(bool sync_on_fsync, size_t open_files) {
    ApplierOptions o;
    o.sync_on_fsync = sync_on_fsync;
    o.open_files = open_files;
    openApplier(o);
  }
  void openApplier(ApplierOptions options) {
    auto a = Applier::open(root_, options);
    ASSERT_TRUE(a.ok()) << a.status().toString();
    applier_ = std::move(a).value();
    seq_ = 0;
  }

  // Applies `op` with the next sequence number.
  Status run(Op op) {
    op.seq = ++seq_;
    return applier_->apply(op);
  }
  void mustRun(Op op) {
    std::string what = std::string(opTypeName(op.type)) + " " + op.path;
    Status s = run(std::move(op));
    ASSERT_TRUE(s.ok()) << what << ": " << s.toString();
  }
  std::string at(const std::string& rel) const { return root_ + "/" + rel; }

  TempDir tmp_;
  std::string root_;
  std::unique_ptr<Applier> applier_;
  uint64_t seq_ = 0;
};

TEST_F(ApplierTest, OpenRefusesMissingRoot) {
  auto a = Applier::open(tmp_.file("nope"));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::NotFound);
}

TEST_F(ApplierTest, CreateMkdirWriteAndOwnership) {
  mustRun(makeOp(OpType::Mkdir, "d", [](Op& o) {
    o.mode = 02750;
    o.uid = 1000;
    o.gid = 1001;
  }));
  mustRun(makeOp(OpType::Create, "d/f", [](Op& o) {
    o.mode = S_IFREG | 04640;
    o.uid = 1002;
    o.gid = 1003;
  }));
  mustRun(writeOp("d/f", 0, "hello"));
  mustRun(writeOp("d/f", 10, "world"));
  mustRun(writeOp("d/f", 1, "E"));

  struct stat d = lstatOf(at("d"));
  EXPECT_TRUE(S_ISDIR(d.st_mode));
  EXPECT_EQ(d.st_mode & 07777, 02750u);  // exact despite the umask
  EXPECT_EQ(d.st_uid, 1000u);
  EXPECT_EQ(d.st_gid, 1001u);
  struct stat f = lstatOf(at("d/f"));
  EXPECT_TRUE(S_ISREG(f.st_mode));
  EXPECT_EQ(f.st_mode & 07777, 04640u);  // set-user-ID survives: chmod comes after chown
  EXPECT_EQ(f.st_uid, 1002u);
  EXPECT_EQ(f.st_gid, 1003u);
  EXPECT_EQ(readFile(at("d/f")), std::string("hEllo\0\0\0\0\0world", 15));
  EXPECT_EQ(applier_->lastSeq(), 5u);

  // O_EXCL: a create of an existing name fails rather than truncating it.
  Status s = run(createOp("d/f"));
  EXPECT_EQ(s.code(), StatusCode::AlreadyExists) << s.toString();
  EXPECT_EQ(applier_->lastSeq(), 5u);
}

TEST_F(ApplierTest, SetAttrAndFallocate) {
  mustRun(createOp("f"));
  mustRun(writeOp("f", 0, "0123456789"));
  mustRun(makeOp(OpType::SetAttr, "f", [](Op& o) {
    o.flags = kSetSize;
    o.length = 4;
  }));
  EXPECT_EQ(readFile(at("f")), "0123");
  mustRun(makeOp(OpType::SetAttr, "f", [](Op& o) {
    o.flags = kSetMode | kSetUid | kSetGid | kSetAtime | kSetMtime;
    o.mode = 0600;
    o.uid = 42;
    o.gid = 43;
    o.atime_sec = 1000;
    o.atime_nsec = 5;
    o.mtime_sec = 2000;
    o.mtime_nsec = 7;
  }));
  struct stat st = lstatOf(at("f"));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, 42u);
  EXPECT_EQ(st.st_gid, 43u);
  EXPECT_EQ(st.st_atim.tv_sec, 1000);
  EXPECT_EQ(st.st_atim.tv_nsec, 5);
  EXPECT_EQ(st.st_mtim.tv_sec, 2000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 7);
  // Only the uid: the gid stays.
  mustRun(makeOp(OpType::SetAttr, "f", [](Op& o) {
    o.flags = kSetUid;
    o.uid = 44;
  }));
  EXPECT_EQ(lstatOf(at("f")).st_gid, 43u);
  // The root itself.
  mustRun(makeOp(OpType::SetAttr, "", [](Op& o) {
    o.flags = kSetMode;
    o.mode = 0711;
  }));
  EXPECT_EQ(lstatOf(root_).st_mode & 07777, 0711u);

  mustRun(makeOp(OpType::Fallocate, "f", [](Op& o) {
    o.offset = 0;
    o.length = 8192;
  }));
  EXPECT_EQ(lstatOf(at("f")).st_size, 8192);
  mustRun(makeOp(OpType::Fallocate, "f", [](Op& o) {
    o.flags = FALLOC_FL_KEEP_SIZE;
    o.offset = 8192;
    o.length = 1 << 20;
  }));
  st = lstatOf(at("f"));
  EXPECT_EQ(st.st_size, 8192);
  EXPECT_GE(st.st_blocks * 512, (8192 + (1 << 20)));
}

// A file this applier has open (created here) gets its attributes through the descriptor, one
// made by someone else through its path: the same result either way, set-user-ID bit included
// (chown first, then chmod).
TEST_F(ApplierTest, SetAttrThroughTheOpenDescriptorOrThePath) {
  mustRun(createOp("open"));
  ASSERT_EQ(::system(("touch " + at("closed")).c_str()), 0);
  ASSERT_EQ(applier_->cachedFiles(), 1u);
  for (const char* name : {"open", "closed"}) {
    mustRun(makeOp(OpType::SetAttr, name, [](Op& o) {
      o.flags = kSetMode | kSetUid | kSetGid | kSetMtime;
      o.mode = 04750;
      o.uid = 51;
      o.gid = 52;
      o.mtime_sec = 3000;
      o.mtime_nsec = 9;
    }));
    struct stat st = lstatOf(at(name));
    EXPECT_EQ(st.st_mode & 07777, 04750u) << name;
    EXPECT_EQ(st.st_uid, 51u) << name;
    EXPECT_EQ(st.st_gid, 52u) << name;
    EXPECT_EQ(st.st_mtim.tv_sec, 3000) << name;
    EXPECT_EQ(st.st_mtim.tv_nsec, 9) << name;
  }
}

TEST_F(ApplierTest, FsyncWithAndWithoutSync) {
  mustRun(mkdirOp("d"));
  mustRun(createOp("d/f"));
  mustRun(makeOp(OpType::Fsync, "d/f"));  // async="second": nothing to do
  mustRun(makeOp(OpType::Fsync, "missing"));
  openApplier(true, 4);
  mustRun(writeOp("d/f", 0, "x"));
  mustRun(makeOp(OpType::Fsync, "d/f", [](Op& o) { o.datasync = true; }));
  mustRun(makeOp(OpType::Fsync, "d/f"));
  mustRun(makeOp(OpType::Fsync, "d"));
  mustRun(makeOp(OpType::Fsync, ""));  // syncfs
  Status s = run(makeOp(OpType::Fsync, "missing"));
  EXPECT_EQ(s.code(), StatusCode::NotFound) << s.toString();
}

TEST_F(ApplierTest, MknodAndSpecialFilesAreNeverOpened) {
  mustRun(makeOp(OpType::Mknod, "fifo", [](Op& o) {
    o.mode = S_IFIFO | 0640;
    o.uid = 9;
  }));
  mustRun(makeOp(OpType::Mknod, "null", [](Op& o) {
    o.mode = S_IFCHR | 0600;
    o.rdev = makedev(1, 3);
  }));
  struct stat st = lstatOf(at("fifo"));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 9u);
  st = lstatOf(at("null"));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  // A write to a FIFO would block in open(), one to a device would reach the driver.
  for (const char* path : {"fifo", "null"}) {
    Status s = run(writeOp(path, 0, "x"));
    EXPECT_EQ(s.code(), StatusCode::FailedPrecondition) << s.toString();
    EXPECT_NE(s.message().find("not a regular file"), std::string::npos) << s.toString();
  }
}

TEST_F(ApplierTest, UnlinkAndRmdir) {
  mustRun(mkdirOp("d"));
  mustRun(createOp("d/f"));
  Status s = run(makeOp(OpType::Rmdir, "d"));
  EXPECT_FALSE(s.ok());  // not empty
  mustRun(makeOp(OpType::Unlink, "d/f"));
  mustRun(makeOp(OpType::Rmdir, "d"));
  EXPECT_TRUE(entries(root_).empty());
  EXPECT_EQ(applier_->cachedFiles(), 0u);
}

TEST_F(ApplierTest, LinkAndSymlink) {
  mustRun(createOp("f"));
  mustRun(writeOp("f", 0, "data"));
  mustRun(mkdirOp("d"));
  mustRun(twoPathOp(OpType::Link, "f", "d/h"));
  EXPECT_EQ(lstatOf(at("f")).st_nlink, 2u);
  EXPECT_EQ(lstatOf(at("f")).st_ino, lstatOf(at("d/h")).st_ino);
  EXPECT_EQ(readFile(at("d/h")), "data");

  mustRun(makeOp(OpType::Symlink, "d/s", [](Op& o) {
    o.path2 = "/does/not/matter/../x";
    o.uid = 77;
    o.gid = 78;
  }));
  struct stat st = lstatOf(at("d/s"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_uid, 77u);  // the link itself, not a target
  EXPECT_EQ(std::filesystem::read_symlink(at("d/s")).string(), "/does/not/matter/../x");
  // Linking a symlink links the symlink.
  mustRun(twoPathOp(OpType::Link, "d/s", "s2"));
  EXPECT_EQ(lstatOf(at("s2")).st_ino, st.st_ino);
}

TEST_F(ApplierTest, Xattrs) {
  mustRun(createOp("f"));
  mustRun(mkdirOp("d"));
  mustRun(makeOp(OpType::Symlink, "s", [](Op& o) { o.path2 = "f"; }));
  auto set = [](std::string path, std::string name, std::string value, int flags = 0) {
    return makeOp(OpType::SetXattr, std::move(path), [&](Op& o) {
      o.name = std::move(name);
      o.data = std::move(value);
      o.flags = flags;
    });
  };
  mustRun(set("f", "user.a", "v1"));
  mustRun(set("d", "user.b", std::string("\0bin", 4)));
  mustRun(set("", "user.root", "r"));
  mustRun(set("s", "trusted.link", "on the link"));  // user.* is not allowed on symlinks
  EXPECT_EQ(getXattr(at("f"), "user.a"), "v1");
  EXPECT_EQ(getXattr(at("d"), "user.b"), std::string("\0bin", 4));
  EXPECT_EQ(getXattr(root_, "user.root"), "r");
  EXPECT_EQ(getXattr(at("s"), "trusted.link"), "on the link");
  EXPECT_EQ(getXattr(at("f"), "trusted.link"), "<errno " + std::to_string(ENODATA) + ">");

  Status s = run(set("f", "user.a", "v2", XATTR_CREATE));
  EXPECT_EQ(s.code(), StatusCode::AlreadyExists) << s.toString();
  mustRun(set("f", "user.a", "v2", XATTR_REPLACE));
  EXPECT_EQ(getXattr(at("f"), "user.a"), "v2");
  mustRun(makeOp(OpType::RemoveXattr, "f", [](Op& o) { o.name = "user.a"; }));
  EXPECT_EQ(getXattr(at("f"), "user.a"), "<errno " + std::to_string(ENODATA) + ">");
  s = run(makeOp(OpType::RemoveXattr, "f", [](Op& o) { o.name = "user.a"; }));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("RemoveXattr \"f\""), std::string::npos) << s.toString();
}

TEST_F(ApplierTest, RenameDirectoryWithCachedDescriptors) {
  mustRun(mkdirOp("a"));
  mustRun(mkdirOp("a/sub"));
  mustRun(createOp("a/f1"));
  mustRun(createOp("a/sub/f2"));
  mustRun(createOp("other"));
  mustRun(writeOp("a/f1", 0, "one"));
  mustRun(writeOp("a/sub/f2", 0, "two"));
  mustRun(writeOp("other", 0, "three"));
  EXPECT_EQ(applier_->cachedFiles(), 3u);
  mustRun(twoPathOp(OpType::Rename, "a", "b"));
  EXPECT_EQ(applier_->cachedFiles(), 1u);  // "other" stays
  mustRun(writeOp("b/f1", 3, "+"));
  mustRun(writeOp("b/sub/f2", 3, "+"));
  mustRun(writeOp("other", 5, "+"));
  EXPECT_EQ(readFile(at("b/f1")), "one+");
  EXPECT_EQ(readFile(at("b/sub/f2")), "two+");
  EXPECT_EQ(readFile(at("other")), "three+");
  // The old path is gone, and no stale descriptor writes through it.
  Status s = run(writeOp("a/f1", 0, "stale"));
  EXPECT_EQ(s.code(), StatusCode::NotFound) << s.toString();
  EXPECT_EQ(readFile(at("b/f1")), "one+");

  // A rename onto a cached file: the next write reaches the new file, not the replaced one.
  mustRun(createOp("x"));
  mustRun(writeOp("x", 0, "x"));
  mustRun(twoPathOp(OpType::Rename, "other", "x"));
  mustRun(writeOp("x", 0, "T"));
  EXPECT_EQ(readFile(at("x")), "Three+");
}

TEST_F(ApplierTest, RenameExchangeAndNoReplace) {
  mustRun(createOp("x"));
  mustRun(writeOp("x", 0, "xx"));
  mustRun(mkdirOp("d"));
  mustRun(createOp("d/y"));
  mustRun(writeOp("d/y", 0, "yy"));
  mustRun(twoPathOp(OpType::Rename, "x", "d", RENAME_EXCHANGE));
  EXPECT_EQ(readFile(at("d")), "xx");
  EXPECT_EQ(readFile(at("x/y")), "yy");
  mustRun(writeOp("x/y", 2, "!"));  // the cached "d/y" was dropped with its ancestor
  mustRun(writeOp("d", 2, "!"));
  EXPECT_EQ(readFile(at("x/y")), "yy!");
  EXPECT_EQ(readFile(at("d")), "xx!");

  Status s = run(twoPathOp(OpType::Rename, "d", "x/y", RENAME_NOREPLACE));
  EXPECT_EQ(s.code(), StatusCode::AlreadyExists) << s.toString();
  s = run(twoPathOp(OpType::Rename, "d", "x/z", RENAME_WHITEOUT));
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument) << s.toString();
}

TEST_F(ApplierTest, OpenFileBound) {
  openApplier(false, 2);
  for (int i = 0; i < 5; ++i) {
    mustRun(createOp("f" + std::to_string(i)));
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 5; ++i) {
      mustRun(writeOp("f" + std::to_string(i), round, std::to_string(i)));
      EXPECT_LE(applier_->cachedFiles(), 2u);
    }
  }
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(readFile(at("f" + std::to_string(i))), std::string(3, static_cast<char>('0' + i)));
  }
}

TEST_F(ApplierTest, HostileSymlinksReachNothingOutside) {
  TempDir outside_dir;
  const std::string outside = outside_dir.path();
  writeFile(outside + "/f", "precious");
  ASSERT_EQ(::chmod((outside + "/f").c_str(), 0644), 0);
  mustRun(createOp("f"));
  mustRun(makeOp(OpType::Symlink, "link", [&](Op& o) { o.path2 = outside; }));
  mustRun(makeOp(OpType::Symlink, "up", [](Op& o) { o.path2 = "../.."; }));
  mustRun(makeOp(OpType::Symlink, "lf", [&](Op& o) { o.path2 = outside + "/f"; }));

  auto setx = [](std::string path) {
    return makeOp(OpType::SetXattr, std::move(path), [](Op& o) {
      o.name = "user.evil";
      o.data = "1";
    });
  };
  auto mode = [](std::string path) {
    return makeOp(OpType::SetAttr, std::move(path), [](Op& o) {
      o.flags = kSetMode;
      o.mode = 0777;
    });
  };
  auto size = [](std::string path) {
    return makeOp(OpType::SetAttr, std::move(path), [](Op& o) {
      o.flags = kSetSize;
      o.length = 0;
    });
  };
  std::vector<Op> hostile = {
      createOp("link/new"),
      mkdirOp("link/dir"),
      writeOp("link/f", 0, "EVIL"),
      writeOp("lf", 0, "EVIL"),  // the last component is a symlink
      size("lf"),
      makeOp(OpType::Mknod, "link/fifo", [](Op& o) { o.mode = S_IFIFO | 0600; }),
      makeOp(OpType::Symlink, "link/s", [](Op& o) { o.path2 = "x"; }),
      twoPathOp(OpType::Link, "f", "link/h"),
      twoPathOp(OpType::Link, "link/f", "stolen"),
      twoPathOp(OpType::Rename, "f", "link/moved"),
      twoPathOp(OpType::Rename, "link/f", "stolen"),
      mode("link/f"),
      mode("lf"),
      size("link/f"),
      setx("link/f"),
      makeOp(OpType::Fallocate, "link/f", [](Op& o) { o.length = 1 << 20; }),
      makeOp(OpType::Unlink, "link/f"),
      createOp("up/escape"),
      mkdirOp("up/escape"),
  };
  for (Op& op : hostile) {
    std::string what = std::string(opTypeName(op.type)) + " " + op.path + " " + op.path2;
    uint64_t before = applier_->lastSeq();
    Status s = run(std::move(op));
    EXPECT_FALSE(s.ok()) << what;
    EXPECT_EQ(applier_->lastSeq(), before) << what;
  }
  EXPECT_EQ(entries(outside), std::vector<std::string>{"f"});
  EXPECT_EQ(readFile(outside + "/f"), "precious");
  struct stat st = lstatOf(outside + "/f");
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(getXattr(outside + "/f", "user.evil"), "<errno " + std::to_string(ENODATA) + ">");
  EXPECT_EQ(entries(tmp_.path()), std::vector<std::string>{"root"});
  EXPECT_EQ(entries(root_), (std::vector<std::string>{"f", "lf", "link", "up"}));
}

TEST_F(ApplierTest, InvalidPathsAreRefused) {
  for (const char* bad : {"../escape", "a/../../escape", "/tmp/abs", "a//b", "./x"}) {
    uint64_t before = applier_->lastSeq();
    Status s = run(createOp(bad));
    EXPECT_EQ(s.code(), StatusCode::InvalidArgument) << bad << ": " << s.toString();
    EXPECT_EQ(applier_->lastSeq(), before);
  }
  Status s = run(twoPathOp(OpType::Rename, "a", "../b"));
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument) << s.toString();
  // And the decoder refuses the same ops before they could reach an applier.
  Op op = createOp("../escape");
  op.seq = 1;
  std::string wire;
  encodeOp(op, &wire);
  EXPECT_EQ(decodeOp(wire).status().code(), StatusCode::InvalidArgument);
  EXPECT_TRUE(entries(root_).empty());
  EXPECT_EQ(entries(tmp_.path()), std::vector<std::string>{"root"});
}

TEST_F(ApplierTest, SequenceMustIncrease) {
  Op op = mkdirOp("a");
  op.seq = 5;
  ASSERT_TRUE(applier_->apply(op).ok());
  EXPECT_EQ(applier_->lastSeq(), 5u);
  Op again = mkdirOp("b");
  for (uint64_t seq : {5u, 3u, 0u}) {
    again.seq = seq;
    Status s = applier_->apply(again);
    EXPECT_EQ(s.code(), StatusCode::FailedPrecondition) << seq << ": " << s.toString();
  }
  EXPECT_EQ(entries(root_), std::vector<std::string>{"a"});
  again.seq = 6;
  EXPECT_TRUE(applier_->apply(again).ok());
  EXPECT_EQ(applier_->lastSeq(), 6u);
}

TEST_F(ApplierTest, MissingPathErrorNamesOpAndPath) {
  Status s = run(writeOp("nope/file", 0, "x"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::NotFound);
  EXPECT_NE(s.message().find("Write \"nope/file\""), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.message();
  s = run(twoPathOp(OpType::Rename, "gone", "there"));
  EXPECT_EQ(s.code(), StatusCode::NotFound);
  EXPECT_NE(s.message().find("Rename \"gone\" -> \"there\""), std::string::npos) << s.message();
  s = run(makeOp(OpType::Unlink, "gone"));
  EXPECT_NE(s.message().find("Unlink \"gone\": unlinkat: No such file"), std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace halo::rfs
