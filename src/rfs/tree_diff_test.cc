#include "rfs/tree_diff.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/time_source.h"
#include "sys/test_temp_dir.h"

namespace halo::rfs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testutil::TempDir;
using testutil::writeFile;

constexpr uint64_t kBlock = 4096;

void sh(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }

// Distinct content per block, so a change in one block changes only its digest.
std::string blocks(int n, char seed) {
  std::string s;
  for (int b = 0; b < n; ++b) {
    s += std::string(kBlock, static_cast<char>(seed + b));
  }
  return s;
}

Manifest walk(const std::string& root, WalkOptions options = {}) {
  options.block_size = kBlock;
  Result<WalkResult> r = walkTree(root, options);
  EXPECT_TRUE(r.ok()) << r.status().toString();
  return r.ok() ? r->manifest : Manifest{};
}

std::vector<DiffEntry> diff(const Manifest& a, const Manifest& b, DiffOptions options = {}) {
  Result<std::vector<DiffEntry>> r = diffTrees(a, b, options);
  EXPECT_TRUE(r.ok()) << r.status().toString();
  return r.ok() ? *r : std::vector<DiffEntry>{};
}

// "kind path" per difference, for compact expectations.
std::vector<std::string> kinds(const std::vector<DiffEntry>& diffs) {
  std::vector<std::string> out;
  for (const DiffEntry& d : diffs) {
    out.push_back(std::string(diffKindName(d.kind)) + " " + d.path);
  }
  return out;
}

const TreeEntry* find(const Manifest& m, const std::string& path) {
  for (const TreeEntry& e : m.entries) {
    if (e.path == path) {
      return &e;
    }
  }
  return nullptr;
}

// A tree with every kind of object the walk records: files of several blocks, a partial last
// block, an empty file, nested directories, a symlink, two names of one inode, an xattr, a fifo.
void makeSample(const std::string& root) {
  writeFile(root + "/a.txt", "hello\n");
  writeFile(root + "/dir/b.bin", blocks(5, 'a'));
  writeFile(root + "/dir/partial.bin", blocks(2, 'k') + "tail");
  writeFile(root + "/dir/sub/c", "c");
  writeFile(root + "/empty", "");
  writeFile(root + "/h1", "linked");
  sh("ln " + root + "/h1 " + root + "/h2");
  sh("ln -s ../a.txt " + root + "/dir/link");
  sh("setfattr -n user.tag -v one " + root + "/a.txt");
  sh("setfattr -n user.dirtag -v d " + root + "/dir");
  sh("mkfifo " + root + "/fifo");
}

class TreeDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    makeSample(src());
    sh("cp -a " + src() + " " + dst());
  }
  std::string src() const { return tmp_.path() + "/src"; }
  std::string dst() const { return tmp_.path() + "/dst"; }
  std::vector<DiffEntry> diffSrcDst(WalkOptions options = {}) {
    return diff(walk(src(), options), walk(dst(), options));
  }

  TempDir tmp_;
};

TEST_F(TreeDiffTest, IdenticalTreesHaveNoDiff) {
  Manifest a = walk(src());
  EXPECT_TRUE(diff(a, walk(src())).empty());
  EXPECT_TRUE(diff(a, walk(dst())).empty()) << ::testing::PrintToString(kinds(diffSrcDst()));
  ASSERT_NE(find(a, "dir/b.bin"), nullptr);
  EXPECT_EQ(find(a, "dir/b.bin")->block_digests.size(), 5u);
  EXPECT_EQ(find(a, "dir/partial.bin")->block_digests.size(), 3u);
  EXPECT_TRUE(find(a, "empty")->block_digests.empty());
  EXPECT_EQ(find(a, "dir/link")->symlink_target, "../a.txt");
  EXPECT_EQ(a.entries.front().path, "");
  EXPECT_TRUE(std::is_sorted(a.entries.begin(), a.entries.end(),
                             [](auto& x, auto& y) { return x.path < y.path; }));
}

TEST_F(TreeDiffTest, ContentChangeInBlock3Of5) {
  // Overwrite one byte in block 3 in place (same size), then restore the mtime.
  sh("printf 'X' | dd of=" + dst() + "/dir/b.bin bs=1 seek=" + std::to_string(3 * kBlock + 100) +
     " conv=notrunc status=none");
  sh("touch -r " + src() + "/dir/b.bin " + dst() + "/dir/b.bin");
  std::vector<DiffEntry> d = diffSrcDst();
  ASSERT_EQ(d.size(), 1u) << ::testing::PrintToString(kinds(d));
  EXPECT_EQ(d[0].kind, DiffKind::Content);
  EXPECT_EQ(d[0].path, "dir/b.bin");
  EXPECT_THAT(d[0].blocks, ElementsAre(3u));
  EXPECT_EQ(d[0].detail, "block 3 differs");
  EXPECT_EQ(describeDiff(d[0]), "content     dir/b.bin: block 3 differs");
  DiffSummary s = summarize(d, walk(src()));
  EXPECT_EQ(s.files, 1u);
  EXPECT_EQ(s.bytes, kBlock);
}

TEST_F(TreeDiffTest, OnlyLocalAndOnlyRemote) {
  sh("rm " + dst() + "/a.txt && echo new > " + dst() + "/dir/new");
  EXPECT_THAT(kinds(diffSrcDst()), ElementsAre("only-local a.txt", "only-remote dir/new"));
}

TEST_F(TreeDiffTest, Type) {
  sh("rm " + dst() + "/dir/sub/c && mkdir " + dst() + "/dir/sub/c");
  std::vector<DiffEntry> d = diffSrcDst();
  EXPECT_THAT(kinds(d), ElementsAre("type dir/sub/c"));
  EXPECT_EQ(d[0].detail, "type file vs directory");
}

TEST_F(TreeDiffTest, Mode) {
  sh("chmod 600 " + dst() + "/a.txt");
  std::vector<DiffEntry> d = diffSrcDst();
  EXPECT_THAT(kinds(d), ElementsAre("mode a.txt"));
  EXPECT_EQ(d[0].detail, "mode 0644 vs 0600");
}

TEST_F(TreeDiffTest, Owner) {
  sh("chown -h 1234:5678 " + dst() + "/dir/link");
  std::vector<DiffEntry> d = diffSrcDst();
  EXPECT_THAT(kinds(d), ElementsAre("owner dir/link"));
  EXPECT_EQ(d[0].detail, "owner 0:0 vs 1234:5678");
}

TEST_F(TreeDiffTest, SizeWithAndWithoutDigests) {
  sh("echo more >> " + dst() + "/dir/partial.bin");
  sh("touch -r " + src() + "/dir/partial.bin " + dst() + "/dir/partial.bin");
  WalkOptions no_digests;
  no_digests.block_digests = false;
  std::vector<DiffEntry> d = diffSrcDst(no_digests);
  EXPECT_THAT(kinds(d), ElementsAre("size dir/partial.bin"));
  EXPECT_EQ(d[0].detail, "size 8196 vs 8201");
  // With digests the changed last block is named too.
  d = diffSrcDst();
  EXPECT_THAT(kinds(d), ElementsAre("size dir/partial.bin", "content dir/partial.bin"));
  EXPECT_THAT(d[1].blocks, ElementsAre(2u));
}

TEST_F(TreeDiffTest, MtimeOfFilesNotDirectories) {
  sh("touch -d '2001-02-03 04:05:06.5' " + dst() + "/a.txt " + dst() + "/dir");
  EXPECT_THAT(kinds(diffSrcDst()), ElementsAre("mtime a.txt"));
  Manifest a = walk(src());
  Manifest b = walk(dst());
  DiffOptions opts;
  opts.compare_directory_mtime = true;
  EXPECT_THAT(kinds(diff(a, b, opts)), ElementsAre("mtime a.txt", "mtime dir"));
  opts.compare_mtime = false;
  EXPECT_TRUE(diff(a, b, opts).empty());
}

TEST_F(TreeDiffTest, SymlinkTarget) {
  sh("ln -sfn ../empty " + dst() + "/dir/link");
  sh("touch -h -r " + src() + "/dir/link " + dst() + "/dir/link");
  std::vector<DiffEntry> d = diffSrcDst();
  EXPECT_THAT(kinds(d), ElementsAre("symlink dir/link"));
  EXPECT_EQ(d[0].detail, "target '../a.txt' vs '../empty'");
}

TEST_F(TreeDiffTest, Xattrs) {
  sh("setfattr -n user.tag -v two " + dst() + "/a.txt");
  sh("setfattr -x user.dirtag " + dst() + "/dir");
  sh("setfattr -n user.new -v x " + dst() + "/empty");
  sh("setfattr -n user.root -v r " + dst());
  std::vector<DiffEntry> d = diffSrcDst();
  EXPECT_THAT(kinds(d), ElementsAre("xattrs ", "xattrs a.txt", "xattrs dir", "xattrs empty"));
  EXPECT_EQ(describeDiff(d[0]), "xattrs      .: extended attributes: none vs some");
  EXPECT_EQ(d[1].detail, "extended attribute values differ");
  EXPECT_EQ(d[2].detail, "extended attributes: some vs none");
  EXPECT_EQ(d[3].detail, "extended attributes: none vs some");
  sh("setfattr -x user.root " + dst());
  // Same attributes set in another order: same digest.
  sh("setfattr -n user.tag -v one " + dst() + "/a.txt");
  sh("setfattr -n user.dirtag -v d " + dst() + "/dir");
  sh("setfattr -x user.new " + dst() + "/empty");
  EXPECT_TRUE(diffSrcDst().empty());
}

TEST_F(TreeDiffTest, HardLinksVersusSeparateFiles) {
  Manifest a = walk(src());
  ASSERT_NE(find(a, "h1")->link_group, 0u);
  EXPECT_EQ(find(a, "h1")->link_group, find(a, "h2")->link_group);
  EXPECT_EQ(find(a, "a.txt")->link_group, 0u);
  // Two separate files with the same content, mode, owner and mtime.
  sh("cp -p " + dst() + "/h1 " + dst() + "/h2.new && mv " + dst() + "/h2.new " + dst() + "/h2");
  std::vector<DiffEntry> d = diff(a, walk(dst()));
  EXPECT_THAT(kinds(d), ElementsAre("hardlinks h1", "hardlinks h2"));
  EXPECT_EQ(d[0].detail, "linked with h2 vs not linked");
}

TEST(TreeWalk, SymlinksAreNotFollowed) {
  TempDir tmp;
  writeFile(tmp.file("t/f"), "x");
  sh("ln -s / " + tmp.file("t/to_root") + " && ln -s .. " + tmp.file("t/up"));
  Result<WalkResult> r = walkTree(tmp.file("t"), {});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  std::vector<std::string> paths;
  for (const TreeEntry& e : r->manifest.entries) {
    paths.push_back(e.path);
  }
  EXPECT_THAT(paths, ElementsAre("", "f", "to_root", "up"));
  EXPECT_EQ(r->manifest.entries[2].symlink_target, "/");
  EXPECT_TRUE(S_ISLNK(r->manifest.entries[2].type_and_mode));
}

TEST_F(TreeDiffTest, IncludeFilter) {
  sh("echo changed > " + dst() + "/dir/sub/c && rm " + dst() + "/dir/b.bin");
  WalkOptions opts;
  opts.include = [](std::string_view p, bool) { return p != "dir" && !p.starts_with("dir/"); };
  Manifest a = walk(src(), opts);
  for (const TreeEntry& e : a.entries) {
    EXPECT_FALSE(e.path.starts_with("dir")) << e.path;
  }
  EXPECT_NE(find(a, "a.txt"), nullptr);
  EXPECT_TRUE(diff(a, walk(dst(), opts)).empty());
  EXPECT_FALSE(diffSrcDst().empty());
}

TEST_F(TreeDiffTest, ManifestRoundTrip) {
  Manifest a = walk(src());
  std::string bytes = encodeManifest(a);
  Result<Manifest> b = decodeManifest(bytes);
  ASSERT_TRUE(b.ok()) << b.status().toString();
  EXPECT_EQ(*b, a);
  EXPECT_TRUE(diff(a, *b).empty());
  Manifest none = walk(src(), [] {
    WalkOptions o;
    o.block_digests = false;
    return o;
  }());
  EXPECT_EQ(none.block_size, 0u);
  Result<Manifest> c = decodeManifest(encodeManifest(none));
  ASSERT_TRUE(c.ok()) << c.status().toString();
  EXPECT_EQ(*c, none);
}

TEST_F(TreeDiffTest, MalformedManifestsAreRefused) {
  const std::string good = encodeManifest(walk(src()));
  // Every truncation: the header's count promises more than is there.
  for (size_t n = 0; n < good.size(); ++n) {
    Result<Manifest> r = decodeManifest(std::string_view(good).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix " << n;
    EXPECT_EQ(r.status().code(), StatusCode::InvalidArgument);
  }
  EXPECT_THAT(decodeManifest(good + "x").status().message(), HasSubstr("trailing"));
  EXPECT_THAT(decodeManifest("XXXX" + good.substr(4)).status().message(), HasSubstr("magic"));

  // An entry count far beyond the bytes: refused before anything is allocated.
  std::string header = good.substr(0, 6) + std::string("\x80\x20", 2);  // block size 4096
  std::string huge = header + std::string("\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 9) + "abc";
  EXPECT_THAT(decodeManifest(huge).status().message(), HasSubstr("entry count"));

  auto withEntry = [](TreeEntry e, uint64_t block_size = kBlock) {
    Manifest m;
    m.block_size = block_size;
    TreeEntry root;
    root.type_and_mode = S_IFDIR | 0755;
    m.entries.push_back(root);
    m.entries.push_back(std::move(e));
    return encodeManifest(m);
  };
  auto file = [](std::string path) {
    TreeEntry e;
    e.path = std::move(path);
    e.type_and_mode = S_IFREG | 0644;
    return e;
  };
  for (const char* bad : {"../x", "/abs", "a//b", "a/./b", "a/", "a/..", ""}) {
    Result<Manifest> r = decodeManifest(withEntry(file(bad)));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("entry 1")) << bad;
  }
  EXPECT_THAT(decodeManifest(withEntry(file(std::string(5000, 'a')))).status().message(),
              HasSubstr("longer than"));
  EXPECT_THAT(decodeManifest(withEntry(file(std::string("a\0b", 3)))).status().message(),
              HasSubstr("NUL"));
  {
    Manifest m;
    m.entries = {file(""), file("b"), file("a")};
    m.entries[0].type_and_mode = S_IFDIR | 0755;
    EXPECT_THAT(decodeManifest(encodeManifest(m)).status().message(), HasSubstr("unsorted"));
    m.entries[2].path = "b";
    EXPECT_THAT(decodeManifest(encodeManifest(m)).status().message(), HasSubstr("duplicate"));
  }
  TreeEntry e = file("f");
  e.size = uint64_t{1} << 50;  // claims 2^38 digests
  e.block_digests.resize(3);
  EXPECT_THAT(decodeManifest(withEntry(e)).status().message(), HasSubstr("block digests"));
  e = file("f");
  e.type_and_mode = 0170644;
  EXPECT_THAT(decodeManifest(withEntry(e)).status().message(), HasSubstr("bad mode"));
  e = file("f");
  e.mtime_nsec = 1000000000;
  EXPECT_THAT(decodeManifest(withEntry(e)).status().message(), HasSubstr("nanoseconds"));
  e = file("f");
  e.symlink_target = "x";
  EXPECT_THAT(decodeManifest(withEntry(e)).status().message(), HasSubstr("symlink target"));
  e = file("f");
  e.xattr_digest = "short";
  EXPECT_THAT(decodeManifest(withEntry(e)).status().message(), HasSubstr("xattr digest"));

  // Random corruption never crashes and never yields an unsorted or invalid result.
  uint64_t x = 88172645463325252ull;
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bad = good;
    for (int k = 0; k < 1 + i % 4; ++k) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      bad[x % bad.size()] = static_cast<char>(x >> 32);
    }
    Result<Manifest> r = decodeManifest(bad);
    if (r.ok()) {
      ++accepted;  // e.g. a flipped digest byte: still well-formed
      EXPECT_TRUE(std::is_sorted(r->entries.begin(), r->entries.end(),
                                 [](auto& a, auto& b) { return a.path < b.path; }));
    }
  }
  std::printf("random corruptions accepted as well-formed: %d of 3000\n", accepted);
}

TEST(TreeWalk, MountPointsAreNotCrossed) {
  TempDir tmp;
  const std::string root = tmp.file("t");
  writeFile(root + "/f", "x");
  writeFile(root + "/bindsrc/g", "y");
  sh("mkdir " + root + "/mnt " + root + "/bindmnt");
  // The mounts live in a private mount namespace of a child, so nothing leaks to the machine.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) {
      ::_exit(77);
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", (root + "/mnt").c_str(), "tmpfs", 0, "size=1m") != 0 ||
        ::mount((root + "/bindsrc").c_str(), (root + "/bindmnt").c_str(), nullptr, MS_BIND,
                nullptr) != 0) {
      ::_exit(78);
    }
    writeFile(root + "/mnt/inside", "z");
    Result<WalkResult> r = walkTree(root, {});
    if (!r.ok()) {
      ::_exit(2);
    }
    std::vector<std::string> paths;
    for (const TreeEntry& e : r->manifest.entries) {
      paths.push_back(e.path);
    }
    std::vector<std::string> want = {"", "bindsrc", "bindsrc/g", "f"};
    std::vector<std::string> notes = {"skipped mount point bindmnt", "skipped mount point mnt"};
    std::sort(r->notes.begin(), r->notes.end());
    if (paths != want) {
      ::_exit(3);
    }
    ::_exit(r->notes == notes ? 0 : 4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77 || WEXITSTATUS(status) == 78) {
    GTEST_SKIP() << "cannot create a private mount namespace here";
  }
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: walk failed, 3: crossed a mount, 4: notes wrong";
}

TEST(TreeWalk, UsrIncludeCopyWithThreeChanges) {
  TempDir tmp;
  const std::string copy = tmp.file("include");
  sh("cp -a /usr/include " + copy);
  WalkOptions opts;
  opts.block_size = kBlock;
  auto t0 = RealTimeSource().monotonicTime();
  Result<WalkResult> local = walkTree("/usr/include", opts);
  auto t1 = RealTimeSource().monotonicTime();
  ASSERT_TRUE(local.ok()) << local.status().toString();
  const Manifest& a = local->manifest;
  std::printf("/usr/include: %zu entries, %.1f MB hashed in %.2f s, manifest %zu bytes\n",
              a.entries.size(), local->bytes_hashed / 1e6,
              std::chrono::duration<double>(t1 - t0).count(), encodeManifest(a).size());
  ASSERT_TRUE(diff(a, walk(copy, opts)).empty());

  // Three files not hard-linked (a change would show under every name): the largest gets one
  // byte changed in place, another is chmod'ed, a third removed.
  std::vector<const TreeEntry*> files;
  for (const TreeEntry& e : a.entries) {
    if (S_ISREG(e.type_and_mode) && e.link_group == 0 && e.size > 3 * kBlock) {
      files.push_back(&e);
    }
  }
  ASSERT_GE(files.size(), 3u);
  std::sort(files.begin(), files.end(), [](auto* x, auto* y) { return x->size > y->size; });
  const TreeEntry& big = *files[0];
  uint64_t offset = big.size / 2;
  std::string target = copy + "/" + big.path;
  sh("printf '\\001' | dd of=" + target + " bs=1 seek=" + std::to_string(offset) +
     " conv=notrunc status=none");
  sh("touch -r /usr/include/" + big.path + " " + target);
  sh("chmod 0600 " + copy + "/" + files[1]->path);
  sh("rm " + copy + "/" + files[2]->path);

  std::vector<DiffEntry> d = diff(a, walk(copy, opts));
  for (const DiffEntry& e : d) {
    std::printf("  %s\n", describeDiff(e).c_str());
  }
  std::vector<std::string> want = {"content " + big.path, "mode " + files[1]->path,
                                   "only-local " + files[2]->path};
  std::sort(want.begin(), want.end(), [&](const std::string& x, const std::string& y) {
    return x.substr(x.find(' ') + 1) < y.substr(y.find(' ') + 1);
  });
  EXPECT_EQ(kinds(d), want);
  for (const DiffEntry& e : d) {
    if (e.kind == DiffKind::Content) {
      EXPECT_THAT(e.blocks, ElementsAre(offset / kBlock));
    }
  }
  DiffSummary s = summarize(d, a);
  EXPECT_EQ(s.files, 2u);
  EXPECT_EQ(s.bytes, files[2]->size + kBlock);
}

TEST(TreeWalk, SummaryCountsWholeFilesAndDifferingBlocks) {
  Manifest local;
  local.block_size = kBlock;
  auto add = [&](std::string path, mode_t mode, uint64_t size) {
    TreeEntry e;
    e.path = std::move(path);
    e.type_and_mode = mode;
    e.size = size;
    local.entries.push_back(e);
  };
  add("", S_IFDIR | 0755, 0);
  add("d", S_IFDIR | 0755, 0);
  add("new", S_IFREG | 0644, 10000);
  add("tail", S_IFREG | 0644, 2 * kBlock + 10);
  std::vector<DiffEntry> diffs = {
      {"d", DiffKind::OnlyLocal, "directory", {}},
      {"gone", DiffKind::OnlyRemote, "file", {}},
      {"new", DiffKind::OnlyLocal, "file", {}},
      {"tail", DiffKind::Size, "size 8202 vs 16384", {}},
      {"tail", DiffKind::Content, "blocks 0, 2-3 differ", {0, 2, 3}},
  };
  DiffSummary s = summarize(diffs, local);
  EXPECT_EQ(s.files, 2u);
  EXPECT_EQ(s.bytes, 10000 + kBlock + 10);
}

TEST(TreeWalk, DescribeEscapesAndListsRanges) {
  DiffEntry d{"a\nb", DiffKind::Content, "", {3, 7, 8, 9}};
  Manifest l, r;
  l.block_size = r.block_size = kBlock;
  TreeEntry root;
  root.type_and_mode = S_IFDIR | 0755;
  TreeEntry f;
  f.path = "a\nb";
  f.type_and_mode = S_IFREG | 0644;
  f.size = 10 * kBlock;
  f.block_digests.resize(10);
  l.entries = {root, f};
  for (uint64_t b : d.blocks) {
    f.block_digests[b][0] = 1;
  }
  r.entries = {root, f};
  std::vector<DiffEntry> out = diff(l, r);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(describeDiff(out[0]), "content     a\\x0ab: blocks 3, 7-9 differ");
  r.block_size = 2 * kBlock;
  EXPECT_EQ(diffTrees(l, r, {}).status().code(), StatusCode::FailedPrecondition);
}

TEST(TreeWalk, BadArguments) {
  EXPECT_FALSE(walkTree("/nonexistent/halo", {}).ok());
  WalkOptions o;
  o.block_size = 0;
  EXPECT_EQ(walkTree("/tmp", o).status().code(), StatusCode::InvalidArgument);
}

double residentPercent(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size == 0) {
    return -1;
  }
  void* map = ::mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    return -1;
  }
  size_t page = ::sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> vec((st.st_size + page - 1) / page);
  double resident = 0;
  if (::mincore(map, st.st_size, vec.data()) == 0) {
    resident = static_cast<double>(
        std::count_if(vec.begin(), vec.end(), [](unsigned char v) { return v & 1; }));
  }
  ::munmap(map, st.st_size);
  return 100.0 * resident / vec.size();
}

// Prints, does not assert: the figure depends on the machine.
TEST(TreeWalk, SpeedOn512MiBFile) {
  TempDir tmp;
  const std::string path = tmp.file("t/big");
  sh("mkdir " + tmp.file("t"));
  constexpr size_t kChunk = 4 << 20;
  constexpr size_t kTotal = 512u << 20;
  {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    std::vector<uint64_t> buf(kChunk / 8);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t done = 0; done < kTotal; done += kChunk) {
      for (uint64_t& w : buf) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        w = x;
      }
      ASSERT_EQ(::write(fd, buf.data(), kChunk), static_cast<ssize_t>(kChunk));
    }
    ASSERT_EQ(::fdatasync(fd), 0);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // the first walk reads from the disk
    ::close(fd);
  }
  for (const char* label : {"cold (from disk)", "warm (file cached before the walk)"}) {
    if (label[0] == 'w') {
      // Cache the file with ordinary reads: the walk must read it at memory speed and leave it.
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      std::vector<char> buf(kChunk);
      while (::read(fd, buf.data(), buf.size()) > 0) {
      }
      ::close(fd);
    }
    auto t0 = RealTimeSource().monotonicTime();
    Result<WalkResult> r = walkTree(tmp.file("t"), {});
    double s = std::chrono::duration<double>(RealTimeSource().monotonicTime() - t0).count();
    ASSERT_TRUE(r.ok()) << r.status().toString();
    ASSERT_EQ(r->bytes_hashed, kTotal);
    std::printf(
        "walk speed, 512 MiB file, 1 MiB blocks, 4 threads, %s: %.0f MB/s (%.2f s), "
        "%.1f%% of the file left in the page cache\n",
        label, kTotal / 1e6 / s, s, residentPercent(path));
  }
}

}  // namespace
}  // namespace halo::rfs
