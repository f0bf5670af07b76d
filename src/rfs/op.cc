// Wire format of one operation record (all integers little-endian):
//
//   u32 length        bytes of the record after this field
//   u8  version       2
//   u8  type          OpType
//   u64 seq
//   u16 root
//   u32 mode   u64 rdev   u32 uid   u32 gid
//   u64 offset u64 length i32 flags
//   i64 atime_sec  i64 atime_nsec  i64 mtime_sec  i64 mtime_nsec
//   u8  datasync      0 or 1
//   u32 n, n bytes    path
//   u32 n, n bytes    path2
//   u32 n, n bytes    name
//   u32 n, n bytes    data
//
// Every record carries every field: about 100 bytes of overhead is nothing next to a network round
// trip, and one layout for all types keeps the decoder small enough to audit. The decoder refuses a
// declared length above the largest valid record as soon as it sees the length field, so a peer
// can never make the receiver buffer more than one legitimate record.

#include "rfs/op.h"

#include <sys/stat.h>

#include <initializer_list>
#include <string>
#include <type_traits>

namespace halo::rfs {
namespace {

constexpr uint8_t kFormatVersion = 2;
constexpr size_t kFixedSize = 1 + 1 + 8 + 2 + 4 + 8 + 4 + 4 + 8 + 8 + 4 + 8 * 4 + 1;
constexpr size_t kMinRecord = kFixedSize + 4 * 4;
constexpr size_t kMaxRecord = kMinRecord + 2 * kMaxPath + kMaxXattrName + kMaxData;
constexpr size_t kMaxNameMax = 255;  // NAME_MAX: no Linux file system accepts a longer component

void putU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }

template <typename T>
void putLe(std::string* out, T v) {
  auto u = static_cast<std::make_unsigned_t<T>>(v);
  for (size_t i = 0; i < sizeof(T); ++i) {
    out->push_back(static_cast<char>(u & 0xff));
    u = static_cast<decltype(u)>(u >> 8);
  }
}

void putString(std::string* out, const std::string& s) {
  putLe<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

// Reads fields from one record; every read checks the bound, and a failure is sticky.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  template <typename T>
  bool get(T* v) {
    if (in_.size() - pos_ < sizeof(T)) {
      return false;
    }
    std::make_unsigned_t<T> u = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      u |= static_cast<std::make_unsigned_t<T>>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    }
    pos_ += sizeof(T);
    *v = static_cast<T>(u);
    return true;
  }

  // Refuses a length above `max` before copying anything.
  Status getString(const char* field, size_t max, std::string* s) {
    uint32_t n = 0;
    if (!get(&n)) {
      return invalidArgument(std::string("op record: ") + field + ": length past end of record");
    }
    if (n > max) {
      return invalidArgument(std::string("op record: ") + field + ": " + std::to_string(n) +
                             " bytes, at most " + std::to_string(max));
    }
    if (in_.size() - pos_ < n) {
      return invalidArgument(std::string("op record: ") + field + ": bytes past end of record");
    }
    s->assign(in_.substr(pos_, n));
    pos_ += n;
    return okStatus();
  }

  size_t remaining() const { return in_.size() - pos_; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

bool typeAllowsRoot(OpType t) {
  return t == OpType::SetAttr || t == OpType::SetXattr || t == OpType::RemoveXattr ||
         t == OpType::Fsync || t == OpType::SyncDir || t == OpType::SyncXattrs ||
         t == OpType::ResyncDone || t == OpType::ResyncProgress || t == OpType::Goodbye ||
         t == OpType::ResyncBegin;
}

bool validTarget(const std::string& t) {
  return !t.empty() && t.size() <= kMaxPath && t.find('\0') == std::string::npos;
}

// The largest data field each type may carry (0: none).
size_t maxDataOf(OpType t) {
  switch (t) {
    case OpType::Write:
    case OpType::SyncDir:
    case OpType::VerifyBlocks:
    case OpType::SyncXattrs:
      return kMaxData;
    case OpType::SetXattr:
      return kMaxXattrValue;
    case OpType::ResyncProgress:
      return kMaxProgress;
    default:
      return 0;
  }
}

Status requireEmpty(const Op& op, const std::string& s, const char* field) {
  if (!s.empty()) {
    return invalidArgument(std::string(opTypeName(op.type)) + ": field " + field +
                           " must be empty");
  }
  return okStatus();
}

Status checkFileType(const Op& op, std::initializer_list<uint32_t> allowed) {
  uint32_t fmt = op.mode & S_IFMT;
  for (uint32_t a : allowed) {
    if (fmt == a) {
      return okStatus();
    }
  }
  return invalidArgument(std::string(opTypeName(op.type)) + " \"" + op.path +
                         "\": file type bits of mode not allowed");
}

}  // namespace

const char* opTypeName(OpType t) {
  switch (t) {
    case OpType::Write:
      return "Write";
    case OpType::Create:
      return "Create";
    case OpType::Mknod:
      return "Mknod";
    case OpType::Mkdir:
      return "Mkdir";
    case OpType::Unlink:
      return "Unlink";
    case OpType::Rmdir:
      return "Rmdir";
    case OpType::Rename:
      return "Rename";
    case OpType::Link:
      return "Link";
    case OpType::Symlink:
      return "Symlink";
    case OpType::SetAttr:
      return "SetAttr";
    case OpType::Fallocate:
      return "Fallocate";
    case OpType::SetXattr:
      return "SetXattr";
    case OpType::RemoveXattr:
      return "RemoveXattr";
    case OpType::Fsync:
      return "Fsync";
    case OpType::SyncDir:
      return "SyncDir";
    case OpType::SyncFile:
      return "SyncFile";
    case OpType::VerifyBlocks:
      return "VerifyBlocks";
    case OpType::SyncSymlink:
      return "SyncSymlink";
    case OpType::SyncNode:
      return "SyncNode";
    case OpType::SyncLink:
      return "SyncLink";
    case OpType::SyncXattrs:
      return "SyncXattrs";
    case OpType::ResyncDone:
      return "ResyncDone";
    case OpType::ResyncProgress:
      return "ResyncProgress";
    case OpType::Goodbye:
      return "Goodbye";
    case OpType::ResyncBegin:
      return "ResyncBegin";
  }
  return "Unknown";
}

bool validRelativePath(std::string_view path, bool allow_root) {
  if (path.empty()) {
    return allow_root;
  }
  if (path.size() > kMaxPath || path.find('\0') != std::string_view::npos) {
    return false;
  }
  size_t start = 0;
  while (true) {
    size_t end = path.find('/', start);
    std::string_view part = path.substr(start, end == std::string_view::npos ? end : end - start);
    // Also catches a leading '/' (first component empty) and a trailing one (last empty).
    if (part.empty() || part == "." || part == ".." || part.size() > kMaxNameMax) {
      return false;
    }
    if (end == std::string_view::npos) {
      return true;
    }
    start = end + 1;
  }
}

Status validateOp(const Op& op) {
  if (op.type < OpType::Write || op.type > kLastOpType) {
    return invalidArgument("op: unknown type " + std::to_string(static_cast<int>(op.type)));
  }
  const std::string name = opTypeName(op.type);
  if (!validRelativePath(op.path, typeAllowsRoot(op.type))) {
    return invalidArgument(name + ": invalid path \"" + op.path + "\"");
  }
  if ((op.type == OpType::ResyncDone || op.type == OpType::ResyncProgress ||
       op.type == OpType::Goodbye || op.type == OpType::ResyncBegin) &&
      !op.path.empty()) {
    return invalidArgument(name + ": path must be empty");
  }
  switch (op.type) {
    case OpType::Rename:
    case OpType::Link:
    case OpType::SyncLink:
      if (!validRelativePath(op.path2, false)) {
        return invalidArgument(name + ": invalid path2 \"" + op.path2 + "\"");
      }
      break;
    case OpType::Symlink:
    case OpType::SyncSymlink:
      if (!validTarget(op.path2)) {
        return invalidArgument(name + " \"" + op.path + "\": invalid target");
      }
      break;
    default:
      HALO_RETURN_IF_ERROR(requireEmpty(op, op.path2, "path2"));
  }
  if (op.type == OpType::SetXattr || op.type == OpType::RemoveXattr) {
    if (op.name.empty() || op.name.size() > kMaxXattrName ||
        op.name.find('\0') != std::string::npos) {
      return invalidArgument(name + " \"" + op.path + "\": invalid xattr name");
    }
  } else {
    HALO_RETURN_IF_ERROR(requireEmpty(op, op.name, "name"));
  }
  const size_t max_data = maxDataOf(op.type);
  if (max_data == 0) {
    HALO_RETURN_IF_ERROR(requireEmpty(op, op.data, "data"));
  } else if (op.data.size() > max_data) {
    return invalidArgument(name + " \"" + op.path + "\": data over " + std::to_string(max_data) +
                           " bytes");
  }
  switch (op.type) {
    case OpType::Create:
      return checkFileType(op, {0, S_IFREG});
    case OpType::Mkdir:
      return checkFileType(op, {0, S_IFDIR});
    case OpType::Mknod:
      return checkFileType(op, {S_IFREG, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK});
    case OpType::SyncDir:
      return checkFileType(op, {S_IFDIR});
    case OpType::SyncFile:
      return checkFileType(op, {S_IFREG});
    case OpType::SyncNode:
      return checkFileType(op, {S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK});
    case OpType::VerifyBlocks:
      if (op.length == 0 || op.length > kMaxData || op.data.size() % 16 != 0) {
        return invalidArgument(name + " \"" + op.path + "\": block size or digest list malformed");
      }
      return okStatus();
    default:
      return okStatus();
  }
}

// Entry lists and xattr lists: u32 count, then per item u32 length + bytes (and u32 type, or a
// second length-prefixed value).
void encodeEntries(const std::vector<DirEntry>& entries, std::string* out) {
  putLe<uint32_t>(out, static_cast<uint32_t>(entries.size()));
  for (const auto& e : entries) {
    putString(out, e.name);
    putLe<uint32_t>(out, e.type);
  }
}

Result<std::vector<DirEntry>> decodeEntries(std::string_view data) {
  Reader r(data);
  uint32_t n = 0;
  if (!r.get(&n) || n > data.size() / 8) {
    return invalidArgument("entry list: bad count");
  }
  std::vector<DirEntry> out(n);
  for (auto& e : out) {
    HALO_RETURN_IF_ERROR(r.getString("entry name", kMaxNameMax, &e.name));
    if (!r.get(&e.type) || !validRelativePath(e.name, false) ||
        e.name.find('/') != std::string::npos) {
      return invalidArgument("entry list: bad entry");
    }
  }
  if (r.remaining() != 0) {
    return invalidArgument("entry list: trailing bytes");
  }
  return out;
}

void encodeXattrs(const XattrList& xattrs, std::string* out) {
  putLe<uint32_t>(out, static_cast<uint32_t>(xattrs.size()));
  for (const auto& [name, value] : xattrs) {
    putString(out, name);
    putString(out, value);
  }
}

Result<XattrList> decodeXattrs(std::string_view data) {
  Reader r(data);
  uint32_t n = 0;
  if (!r.get(&n) || n > data.size() / 8) {
    return invalidArgument("xattr list: bad count");
  }
  XattrList out(n);
  for (auto& [name, value] : out) {
    HALO_RETURN_IF_ERROR(r.getString("xattr name", kMaxXattrName, &name));
    HALO_RETURN_IF_ERROR(r.getString("xattr value", kMaxXattrValue, &value));
    if (name.empty() || name.find('\0') != std::string::npos) {
      return invalidArgument("xattr list: bad name");
    }
  }
  if (r.remaining() != 0) {
    return invalidArgument("xattr list: trailing bytes");
  }
  return out;
}

void encodeOp(const Op& op, std::string* out) {
  out->reserve(out->size() + 160 + op.path.size() + op.path2.size() + op.name.size() +
               op.data.size());
  encodeOpHead(op, out);
  out->append(op.data);
}

void encodeOpHead(const Op& op, std::string* out) {
  size_t start = out->size();
  putLe<uint32_t>(out, 0);  // patched below
  putU8(out, kFormatVersion);
  putU8(out, static_cast<uint8_t>(op.type));
  putLe(out, op.seq);
  putLe(out, op.root);
  putLe(out, op.mode);
  putLe(out, op.rdev);
  putLe(out, op.uid);
  putLe(out, op.gid);
  putLe(out, op.offset);
  putLe(out, op.length);
  putLe(out, op.flags);
  putLe(out, op.atime_sec);
  putLe(out, op.atime_nsec);
  putLe(out, op.mtime_sec);
  putLe(out, op.mtime_nsec);
  putU8(out, op.datasync ? 1 : 0);
  putString(out, op.path);
  putString(out, op.path2);
  putString(out, op.name);
  putLe<uint32_t>(out, static_cast<uint32_t>(op.data.size()));  // the bytes follow
  auto len = static_cast<uint32_t>(out->size() - start - 4 + op.data.size());
  for (size_t i = 0; i < 4; ++i) {
    (*out)[start + i] = static_cast<char>((len >> (8 * i)) & 0xff);
  }
}

// An ack request: u32 length (10), the format version, this type byte (beyond every OpType), u64.
constexpr uint8_t kAckRequestType = 0xA5;
constexpr uint32_t kAckRequestLength = 1 + 1 + 8;

void encodeAckRequest(uint64_t upto, std::string* out) {
  putLe<uint32_t>(out, kAckRequestLength);
  putU8(out, kFormatVersion);
  putU8(out, kAckRequestType);
  putLe(out, upto);
}

std::optional<std::pair<uint64_t, size_t>> decodeAckRequest(std::string_view in) {
  Reader r(in);
  uint32_t len = 0;
  uint8_t version = 0;
  uint8_t type = 0;
  uint64_t upto = 0;
  if (!r.get(&len) || len != kAckRequestLength || !r.get(&version) || version != kFormatVersion ||
      !r.get(&type) || type != kAckRequestType || !r.get(&upto)) {
    return std::nullopt;
  }
  return std::make_pair(upto, size_t{4} + kAckRequestLength);
}

Result<std::pair<Op, size_t>> decodeOp(std::string_view in) {
  Reader header(in);
  uint32_t len = 0;
  if (!header.get(&len)) {
    return unavailable("op record: incomplete length");
  }
  if (len > kMaxRecord) {
    return invalidArgument("op record: length " + std::to_string(len) + " over " +
                           std::to_string(kMaxRecord));
  }
  if (len < kMinRecord) {
    return invalidArgument("op record: length " + std::to_string(len) + " under " +
                           std::to_string(kMinRecord));
  }
  if (in.size() - 4 < len) {
    return unavailable("op record: incomplete, " + std::to_string(in.size() - 4) + " of " +
                       std::to_string(len) + " bytes");
  }
  Reader r(in.substr(4, len));
  uint8_t version = 0;
  uint8_t type = 0;
  uint8_t datasync = 0;
  Op op;
  // The fixed part fits: len >= kMinRecord was checked above.
  (void)r.get(&version);
  if (version != kFormatVersion) {
    return invalidArgument("op record: version " + std::to_string(version) + ", expected " +
                           std::to_string(kFormatVersion));
  }
  (void)r.get(&type);
  if (type < static_cast<uint8_t>(OpType::Write) || type > static_cast<uint8_t>(kLastOpType)) {
    return invalidArgument("op record: unknown type " + std::to_string(type));
  }
  op.type = static_cast<OpType>(type);
  bool ok = r.get(&op.seq) && r.get(&op.root) && r.get(&op.mode) && r.get(&op.rdev) &&
            r.get(&op.uid) && r.get(&op.gid) && r.get(&op.offset) && r.get(&op.length) &&
            r.get(&op.flags) && r.get(&op.atime_sec) && r.get(&op.atime_nsec) &&
            r.get(&op.mtime_sec) && r.get(&op.mtime_nsec) && r.get(&datasync);
  if (!ok) {
    return invalidArgument("op record: fixed fields past end of record");
  }
  if (datasync > 1) {
    return invalidArgument("op record: datasync " + std::to_string(datasync) + ", expected 0/1");
  }
  op.datasync = datasync == 1;
  HALO_RETURN_IF_ERROR(r.getString("path", kMaxPath, &op.path));
  HALO_RETURN_IF_ERROR(r.getString("path2", kMaxPath, &op.path2));
  HALO_RETURN_IF_ERROR(r.getString("name", kMaxXattrName, &op.name));
  HALO_RETURN_IF_ERROR(r.getString("data", kMaxData, &op.data));
  if (r.remaining() != 0) {
    return invalidArgument("op record: " + std::to_string(r.remaining()) + " trailing bytes");
  }
  HALO_RETURN_IF_ERROR(validateOp(op).withPrefix("op record"));
  return std::make_pair(std::move(op), size_t{4} + len);
}

}  // namespace halo::rfs
