#include "rfs/op.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace halo::rfs {
namespace {

constexpr size_t kLengthField = 4;
constexpr size_t kVersionAt = 4;
constexpr size_t kTypeAt = 5;

// Designated initializers would trip -Wmissing-field-initializers; a setter lambda does not.
template <typename F>
Op makeOp(OpType type, F set) {
  Op op;
  op.type = type;
  set(op);
  return op;
}

// One valid op of every type, with edge values in the fields it carries.
std::vector<Op> sampleOps() {
  constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
  constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
  constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
  std::vector<Op> ops;
  auto add = [&](Op op) {
    op.seq = ops.size() + 1;
    ops.push_back(std::move(op));
  };
  std::string max_path(kMaxPath, 'p');
  for (size_t i = 200; i < kMaxPath; i += 201) {
    max_path[i] = '/';  // components stay under NAME_MAX
  }
  std::string binary;
  for (int i = 0; i < 256; ++i) {
    binary.push_back(static_cast<char>(i));
  }
  add(makeOp(OpType::Write, [&](Op& o) {
    o.path = "a/b";
    o.offset = kU64Max;
    o.data = binary;
  }));
  add(makeOp(OpType::Write, [&](Op& o) {
    o.path = max_path;
    o.data = std::string(kMaxData, 'x');
  }));
  add(makeOp(OpType::Write, [&](Op& o) { o.path = "empty"; }));
  add(makeOp(OpType::Create, [&](Op& o) {
    o.path = "f";
    o.mode = S_IFREG | 07777;
    o.uid = UINT32_MAX;
    o.gid = UINT32_MAX;
  }));
  add(makeOp(OpType::Mknod, [&](Op& o) {
    o.path = "dev";
    o.mode = S_IFCHR | 0600;
    o.rdev = kU64Max;
  }));
  add(makeOp(OpType::Mkdir, [&](Op& o) {
    o.path = "d/e";
    o.mode = 0755;
    o.uid = 1;
    o.gid = 2;
  }));
  add(makeOp(OpType::Unlink, [&](Op& o) { o.path = "x"; }));
  add(makeOp(OpType::Rmdir, [&](Op& o) { o.path = "d"; }));
  add(makeOp(OpType::Rename, [&](Op& o) {
    o.path = "a";
    o.path2 = "b/c";
    o.flags = -1;
  }));
  add(makeOp(OpType::Link, [&](Op& o) {
    o.path = "a";
    o.path2 = max_path;
  }));
  add(makeOp(OpType::Symlink, [&](Op& o) {
    o.path = "l";
    o.path2 = "/abs/../x\xff";
    o.uid = 3;
    o.gid = 4;
  }));
  add(makeOp(OpType::Symlink, [&](Op& o) {
    o.path = "l2";
    o.path2 = std::string(kMaxPath, '.');
  }));
  add(makeOp(OpType::SetAttr, [&](Op& o) {
    o.path = "";
    o.mode = 01777;
    o.uid = 5;
    o.gid = 6;
    o.length = kU64Max;
    o.flags = 63;
    o.atime_sec = kI64Min;
    o.atime_nsec = kI64Max;
    o.mtime_sec = kI64Max;
    o.mtime_nsec = kI64Min;
  }));
  add(makeOp(OpType::Fallocate, [&](Op& o) {
    o.path = "f";
    o.offset = kU64Max;
    o.length = kU64Max;
    o.flags = std::numeric_limits<int32_t>::min();
  }));
  add(makeOp(OpType::SetXattr, [&](Op& o) {
    o.path = "f";
    o.flags = 2;
    o.name = std::string(kMaxXattrName, 'n');
    o.data = std::string(kMaxXattrValue, '\0');
  }));
  add(makeOp(OpType::SetXattr, [&](Op& o) {
    o.path = "";
    o.name = "user.a";
  }));
  add(makeOp(OpType::RemoveXattr, [&](Op& o) {
    o.path = "f";
    o.name = "user.a";
  }));
  add(makeOp(OpType::Fsync, [&](Op& o) {
    o.path = "";
    o.datasync = true;
  }));
  add(makeOp(OpType::Fsync, [&](Op& o) { o.path = "f"; }));
  std::string entries;
  encodeEntries({{"a", S_IFREG}, {"sub", S_IFDIR}}, &entries);
  add(makeOp(OpType::SyncDir, [&](Op& o) {
    o.path = "";
    o.root = 65535;
    o.mode = S_IFDIR | 0755;
    o.flags = kSyncListMore;
    o.data = entries;
  }));
  add(makeOp(OpType::SyncFile, [&](Op& o) {
    o.path = "f";
    o.mode = S_IFREG | 0644;
    o.length = kU64Max;
    o.flags = kSyncWholeFile | kSyncNoXattrs;
  }));
  add(makeOp(OpType::VerifyBlocks, [&](Op& o) {
    o.path = "f";
    o.offset = 1 << 20;
    o.length = 128 * 1024;
    o.data = std::string(32, 'd');
  }));
  add(makeOp(OpType::SyncSymlink, [&](Op& o) {
    o.path = "l";
    o.path2 = "../t";
    o.mtime_sec = 5;
  }));
  add(makeOp(OpType::SyncNode, [&](Op& o) {
    o.path = "fifo";
    o.mode = S_IFIFO | 0600;
  }));
  add(makeOp(OpType::SyncLink, [&](Op& o) {
    o.path = "a";
    o.path2 = "b";
  }));
  std::string xattrs;
  encodeXattrs({{"user.a", std::string("v\0w", 3)}}, &xattrs);
  add(makeOp(OpType::SyncXattrs, [&](Op& o) {
    o.path = "";
    o.data = xattrs;
  }));
  add(makeOp(OpType::ResyncDone, [&](Op&) {}));
  add(makeOp(OpType::ResyncProgress, [&](Op& o) { o.data = "12 files"; }));
  add(makeOp(OpType::Goodbye, [&](Op&) {}));
  add(makeOp(OpType::ResyncBegin, [&](Op& o) { o.flags = kResyncFull; }));
  return ops;
}

std::string encoded(const Op& op) {
  std::string s;
  encodeOp(op, &s);
  return s;
}

StatusCode decodeCode(std::string_view in) { return decodeOp(in).status().code(); }

void putU32(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    (*s)[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
}

TEST(AckRequestTest, RoundTripsAndIsNeverAnOp) {
  std::string wire;
  encodeAckRequest(0x0102030405060708ull, &wire);
  auto request = decodeAckRequest(wire);
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->first, 0x0102030405060708ull);
  EXPECT_EQ(request->second, wire.size());
  // Not an operation, and not a request when cut short.
  EXPECT_FALSE(decodeOp(wire).ok());
  EXPECT_FALSE(decodeAckRequest(std::string_view(wire).substr(0, wire.size() - 1)).has_value());
  // An operation is not a request; the head of a record plus its data is the record.
  Op op;
  op.type = OpType::Write;
  op.seq = 9;
  op.path = "a/b";
  op.data = std::string(5000, 'x');
  std::string whole;
  encodeOp(op, &whole);
  EXPECT_FALSE(decodeAckRequest(whole).has_value());
  std::string head;
  encodeOpHead(op, &head);
  EXPECT_EQ(head + op.data, whole);
  // A request after a record leaves both decodable.
  std::string stream = whole;
  encodeAckRequest(9, &stream);
  ASSERT_EQ(decodeAckRequest(std::string_view(stream).substr(whole.size()))->first, 9u);
  auto back = decodeOp(stream);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->first, op);
}

TEST(OpTest, TypeNames) {
  EXPECT_STREQ(opTypeName(OpType::Write), "Write");
  EXPECT_STREQ(opTypeName(OpType::RemoveXattr), "RemoveXattr");
  EXPECT_STREQ(opTypeName(OpType::Fsync), "Fsync");
  EXPECT_STREQ(opTypeName(static_cast<OpType>(99)), "Unknown");
}

TEST(OpTest, ValidRelativePath) {
  EXPECT_TRUE(validRelativePath("a", false));
  EXPECT_TRUE(validRelativePath("a/b.c/..d/.e", false));
  EXPECT_TRUE(validRelativePath("", true));
  EXPECT_FALSE(validRelativePath("", false));
  for (const char* bad : {"/a", "a/", "a//b", ".", "..", "a/..", "../a", "a/./b", "/"}) {
    EXPECT_FALSE(validRelativePath(bad, true)) << bad;
  }
  EXPECT_FALSE(validRelativePath(std::string("a\0b", 3), false));
  EXPECT_TRUE(validRelativePath(std::string(255, 'n'), false));
  EXPECT_FALSE(validRelativePath(std::string(256, 'n'), false));
  EXPECT_FALSE(validRelativePath(std::string(kMaxPath + 1, 'n'), false));
}

TEST(OpTest, RoundTripEveryType) {
  std::vector<Op> ops = sampleOps();
  std::vector<bool> seen(32, false);
  for (const Op& op : ops) {
    seen[static_cast<size_t>(op.type)] = true;
    ASSERT_TRUE(validateOp(op).ok()) << validateOp(op).toString();
    std::string s = encoded(op);
    auto r = decodeOp(s);
    ASSERT_TRUE(r.ok()) << opTypeName(op.type) << ": " << r.status().toString();
    EXPECT_EQ(r->first, op) << opTypeName(op.type);
    EXPECT_EQ(r->second, s.size());
  }
  for (int t = static_cast<int>(OpType::Write); t <= static_cast<int>(kLastOpType); ++t) {
    EXPECT_TRUE(seen[static_cast<size_t>(t)]) << "no sample of type " << t;
  }
}

TEST(OpTest, IncrementalDecodingFindsEachRecordOnce) {
  // All samples, the 1 MiB write included: an incomplete record is refused in constant time.
  std::vector<Op> ops = sampleOps();
  std::string stream;
  for (const Op& op : ops) {
    encodeOp(op, &stream);
  }
  std::string buf;
  std::vector<Op> got;
  for (char c : stream) {
    buf.push_back(c);
    auto r = decodeOp(buf);
    if (!r.ok()) {
      ASSERT_EQ(r.status().code(), StatusCode::Unavailable) << r.status().toString();
      continue;
    }
    ASSERT_EQ(r->second, buf.size());
    got.push_back(r->first);
    buf.erase(0, r->second);
  }
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(got, ops);
}

TEST(OpTest, IncompleteIsUnavailable) {
  std::string s = encoded(sampleOps()[0]);
  for (size_t n = 0; n < s.size(); ++n) {
    ASSERT_EQ(decodeCode(std::string_view(s).substr(0, n)), StatusCode::Unavailable) << n;
  }
}

TEST(OpTest, MalformedRecords) {
  const Op base = makeOp(OpType::Write, [&](Op& o) {
    o.seq = 1;
    o.path = "dir/file";
    o.data = "abc";
  });
  const std::string good = encoded(base);
  auto expectInvalid = [](std::string_view in, const char* what) {
    auto r = decodeOp(in);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), StatusCode::InvalidArgument)
        << what << ": " << r.status().toString();
  };
  auto withOp = [](Op op) { return encoded(op); };

  // Truncated length: the declared length is shorter than the fixed fields.
  std::string s = good;
  putU32(&s, 0, 10);
  expectInvalid(s, "length under the fixed part");
  // Declared length cuts the strings: bytes the record claims it has are past its end.
  s = good;
  putU32(&s, 0, static_cast<uint32_t>(good.size() - kLengthField - 1));
  expectInvalid(s, "string past end of record");
  // Oversize length: refused from the four length bytes alone, before buffering anything.
  s = good.substr(0, 4);
  putU32(&s, 0, 0xffffffffu);
  expectInvalid(s, "oversize length");
  s = good;
  s[kVersionAt] = 1;
  expectInvalid(s, "old version");
  for (int t : {0, 25, 255}) {
    s = good;
    s[kTypeAt] = static_cast<char>(t);
    expectInvalid(s, "bad type");
  }
  // Trailing bytes inside a record.
  s = good + "zz";
  putU32(&s, 0, static_cast<uint32_t>(s.size() - kLengthField));
  expectInvalid(s, "trailing bytes");
  // datasync is a boolean on the wire.
  s = withOp(makeOp(OpType::Fsync, [&](Op& o) {
    o.seq = 1;
    o.path = "f";
  }));
  s[kLengthField + 1 + 1 + 8 + 2 + 4 + 8 + 4 + 4 + 8 + 8 + 4 + 32] = 2;
  expectInvalid(s, "datasync not 0/1");

  Op op = base;
  for (const char* bad : {"..", "a/../b", "/etc/passwd", "a//b", "a/", ""}) {
    op.path = bad;
    expectInvalid(withOp(op), bad);
  }
  op.path = std::string("a\0b", 3);
  expectInvalid(withOp(op), "NUL in path");
  op.path = std::string(kMaxPath + 1, 'a');
  expectInvalid(withOp(op), "oversize path");
  op = base;
  op.data = std::string(kMaxData + 1, 'd');
  expectInvalid(withOp(op), "oversize data");
  expectInvalid(withOp(makeOp(OpType::SetXattr,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "f";
                                o.name = "user.x";
                                o.data = std::string(kMaxXattrValue + 1, 'v');
                              })),
                "oversize xattr value");
  expectInvalid(withOp(makeOp(OpType::SetXattr,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "f";
                                o.name = std::string(kMaxXattrName + 1, 'n');
                              })),
                "oversize xattr name");
  expectInvalid(withOp(makeOp(OpType::SetXattr,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "f";
                              })),
                "empty xattr name");
  expectInvalid(withOp(makeOp(OpType::Rename,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "a";
                                o.path2 = "../b";
                              })),
                "rename target with ..");
  expectInvalid(withOp(makeOp(OpType::Link,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "a";
                                o.path2 = "/b";
                              })),
                "absolute link target");
  expectInvalid(withOp(makeOp(OpType::Symlink,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "a";
                              })),
                "empty symlink target");
  expectInvalid(withOp(makeOp(OpType::Symlink,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "a";
                                o.path2 = std::string("x\0y", 3);
                              })),
                "NUL in symlink target");
  expectInvalid(withOp(makeOp(OpType::Unlink,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "a";
                                o.path2 = "b";
                              })),
                "unused field set");
  expectInvalid(withOp(makeOp(OpType::Mkdir,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "a";
                                o.mode = S_IFREG | 0755;
                              })),
                "mkdir of a regular file");
  expectInvalid(withOp(makeOp(OpType::Create,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "a";
                                o.mode = S_IFCHR;
                              })),
                "create of a device");
  expectInvalid(withOp(makeOp(OpType::Unlink,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "";
                              })),
                "unlink of the root");
  expectInvalid(withOp(makeOp(OpType::VerifyBlocks,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "f";
                                o.length = 4096;
                                o.data = "odd";
                              })),
                "digest list not a multiple of 16 bytes");
  expectInvalid(withOp(makeOp(OpType::ResyncDone,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "f";
                              })),
                "resync marker with a path");
  expectInvalid(withOp(makeOp(OpType::SyncFile,
                              [&](Op& o) {
                                o.seq = 1;
                                o.path = "d";
                                o.mode = S_IFDIR;
                              })),
                "SyncFile of a directory");
}

TEST(OpTest, EntryAndXattrListsRoundTripAndRefuseGarbage) {
  std::vector<DirEntry> entries = {{"a", S_IFREG}, {std::string(255, 'n'), S_IFLNK}};
  std::string data;
  encodeEntries(entries, &data);
  auto back = decodeEntries(data);
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(*back, entries);
  for (const std::vector<DirEntry>& bad :
       std::vector<std::vector<DirEntry>>{{{"..", S_IFDIR}}, {{"a/b", S_IFREG}}, {{"", S_IFREG}}}) {
    data.clear();
    encodeEntries(bad, &data);
    EXPECT_FALSE(decodeEntries(data).ok()) << bad[0].name;
  }
  EXPECT_FALSE(decodeEntries(std::string("\xff\xff\xff\xff", 4)).ok());
  XattrList xattrs = {{"user.a", "1"}, {"security.b", std::string(1000, 'x')}};
  data.clear();
  encodeXattrs(xattrs, &data);
  auto xback = decodeXattrs(data);
  ASSERT_TRUE(xback.ok());
  EXPECT_EQ(*xback, xattrs);
  EXPECT_FALSE(decodeXattrs(data + "z").ok());
}

// Mutated records must decode or fail cleanly, never crash or read outside the buffer (run
// under -fsanitize=address to check the second part). Each mutant is copied into a buffer of its
// exact size so that ASan sees any overread.
TEST(OpTest, FuzzMutatedRecords) {
  std::vector<std::string> seeds;
  for (const Op& op : sampleOps()) {
    if (op.data.size() < 4096) {
      seeds.push_back(encoded(op));
    }
  }
  std::mt19937 rng(20261126);
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[rng() % seeds.size()];
    int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m) {
      switch (rng() % 5) {
        case 0:  // flip a byte
          s[rng() % s.size()] = static_cast<char>(rng());
          break;
        case 1:  // truncate
          s.resize(rng() % (s.size() + 1));
          break;
        case 2:  // corrupt the length field or a string length
          if (s.size() >= 4) {
            size_t at = (rng() % 2 == 0) ? 0 : rng() % (s.size() - 3);
            putU32(&s, at, static_cast<uint32_t>(rng()));
          }
          break;
        case 3:  // append garbage
          s.append(rng() % 16, static_cast<char>(rng()));
          break;
        default:  // insert a byte
          s.insert(s.begin() + static_cast<std::ptrdiff_t>(rng() % (s.size() + 1)),
                   static_cast<char>(rng()));
      }
      if (s.empty()) {
        break;
      }
    }
    std::unique_ptr<char[]> exact(new char[s.size() + 1]);
    std::copy(s.begin(), s.end(), exact.get());
    auto r = decodeOp(std::string_view(exact.get(), s.size()));
    if (r.ok()) {
      ++decoded;
      ASSERT_LE(r->second, s.size());
      ASSERT_TRUE(validateOp(r->first).ok());
    } else {
      StatusCode c = r.status().code();
      ASSERT_TRUE(c == StatusCode::Unavailable || c == StatusCode::InvalidArgument)
          << r.status().toString();
    }
  }
  // Some mutations keep a record valid (a flipped data byte); the loop must exercise both sides.
  EXPECT_GT(decoded, 0);
  EXPECT_LT(decoded, 20000);
}

}  // namespace
}  // namespace halo::rfs
