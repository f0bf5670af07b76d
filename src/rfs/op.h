#pragma once
// The replication stream (DESIGN 6.1): every modifying operation on a replicated directory, as
// the primary applied it, named by paths relative to the replicated directory (inode numbers and
// file handles are node-local and mean nothing on the peer). The secondary applies the stream in
// order (applier.h). Paths never cross a symlink: the primary's FUSE layer sees every component.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace halo::rfs {

// How soon whoever submits a record waits for the secondary's acknowledgement of it, which decides
// whether the record asks for one and whether the primary may hold it to send it with a later one.
enum class AckWait : uint8_t {
  None,   // not soon (a plain write, a chmod): no request; may be held (corked)
  Later,  // at the next fsync or close, which will send it anyway: a request; may be held
  Now,    // right after (a namespace operation, an O_SYNC write): a request; sent at once
};

// Write and Fallocate carry in mtime_* the modification time the change gave the primary's file
// (both 0: none), which the secondary gives its copy.
enum class OpType : uint8_t {
  Write = 1,    // path, offset, data
  Create,       // path, mode (S_IFREG | perms), uid, gid: an empty regular file
  Mknod,        // path, mode (S_IFIFO/S_IFCHR/S_IFBLK/S_IFSOCK | perms), rdev, uid, gid
  Mkdir,        // path, mode (perms), uid, gid
  Unlink,       // path (not a directory)
  Rmdir,        // path (an empty directory)
  Rename,       // path -> path2, flags (RENAME_NOREPLACE / RENAME_EXCHANGE)
  Link,         // path (existing) -> path2 (new hard link)
  Symlink,      // path (the new link), path2 (its target, raw bytes, may be absolute), uid, gid
  SetAttr,      // path, flags (kSet* mask) with mode / uid / gid / length (size) / times
  Fallocate,    // path, flags (fallocate mode), offset, length
  SetXattr,     // path, name, data (value), flags (XATTR_CREATE / XATTR_REPLACE)
  RemoveXattr,  // path, name
  Fsync,        // path ("" = the whole tree, syncfs); datasync
  // Reintegration (resync.h): each describes the primary's state of one path at its place in the
  // stream, and the secondary makes its copy match ("ensure" semantics, never an error for a
  // missing or different local object).
  SyncDir,       // path, mode (S_IFDIR | perms), uid, gid, data = entry list (encodeEntries), flags
  SyncFile,      // path, mode (S_IFREG | perms), uid, gid, length = size, flags
  VerifyBlocks,  // path, offset = first byte, length = block size, data = block digests (16 B)
  SyncSymlink,   // path, path2 = target, uid, gid, times
  SyncNode,      // path, mode (S_IFIFO/S_IFCHR/S_IFBLK/S_IFSOCK | perms), rdev, uid, gid, times
  SyncLink,      // path (existing name) -> path2 (must be another name of the same inode)
  SyncXattrs,    // path, data = every extended attribute (encodeXattrs): the others go
  ResyncDone,    // the reintegration's last record: the secondary now holds the primary's data;
                 // offset = the new sync point's id (journal.h), which both nodes keep
  ResyncProgress,  // data = progress text shown on the secondary (at most kMaxProgress bytes)
  // The primary ends the session on purpose (its application is stopped): every operation it
  // made is before this record, so the secondary's copy is complete, not outdated.
  Goodbye,
  // The reintegration's first record; flags: kResyncFull when every file is compared (the
  // secondary then forgets its sync point before anything changes: an interrupted full
  // reintegration leaves changes no log describes).
  ResyncBegin,
};
inline constexpr OpType kLastOpType = OpType::ResyncBegin;
inline constexpr int32_t kResyncFull = 1;
const char* opTypeName(OpType t);

// SetAttr flags: which attributes the operation sets.
inline constexpr int32_t kSetMode = 1;
inline constexpr int32_t kSetUid = 2;
inline constexpr int32_t kSetGid = 4;
inline constexpr int32_t kSetSize = 8;
inline constexpr int32_t kSetAtime = 16;  // atime_*; atime_nsec may be UTIME_NOW
inline constexpr int32_t kSetMtime = 32;  // mtime_*; mtime_nsec may be UTIME_NOW

// Sync* flags.
inline constexpr int32_t kSyncNoXattrs = 1;    // the primary's object has none: remove the peer's
inline constexpr int32_t kSyncWholeFile = 2;   // SyncFile: send every block, do not compare
inline constexpr int32_t kSyncListMore = 4;    // SyncDir: the entry list continues in the next one
inline constexpr int32_t kSyncHardLinked = 8;  // SyncFile: the primary's file has other names
// Fast reintegration (only what changed, change_log.h), where the secondary is expected to hold
// the object already:
//   SyncFile: leave hard links alone (they were the same at the sync point) and answer the whole
//   file if it had to be created or replaced, nothing otherwise (the primary sends the changed
//   ranges without being asked);
//   SyncDir (on the list's last record): answer the names of the entries it lacks, or had with
//   another type (NeedRanges::entries), which the primary then describes entirely.
inline constexpr int32_t kSyncRanges = 16;
inline constexpr int32_t kSyncAnswerMissing = 32;

// Bounds a decoder enforces (and an encoder's caller respects): a write carries at most
// kMaxData bytes (the FUSE max_write), a path at most kMaxPath bytes.
inline constexpr size_t kMaxData = 1 << 20;
inline constexpr size_t kMaxXattrValue = 64 * 1024;
inline constexpr size_t kMaxPath = 4096;
inline constexpr size_t kMaxXattrName = 255;
inline constexpr size_t kMaxProgress = 1024;

struct Op {
  OpType type = OpType::Write;
  uint64_t seq = 0;   // stream sequence number, strictly increasing from 1
  uint16_t root = 0;  // which replicated directory of the module (index in <rfs>)
  std::string path;   // relative: no leading '/', no "." or ".." component, no empty component;
                      // "" names the replicated directory itself (SetAttr, xattrs, Fsync)
  std::string path2;  // Rename/Link: the new path; Symlink: the target
  uint32_t mode = 0;
  uint64_t rdev = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t offset = 0;
  uint64_t length = 0;  // Fallocate: length; SetAttr with kSetSize: the new size
  int32_t flags = 0;
  int64_t atime_sec = 0;
  int64_t atime_nsec = 0;
  int64_t mtime_sec = 0;
  int64_t mtime_nsec = 0;
  bool datasync = false;  // Fsync
  std::string name;       // xattr name
  std::string data;       // Write: the bytes; SetXattr: the value
  bool operator==(const Op&) const = default;
};

inline bool carriesMtime(const Op& op) {
  return (op.type == OpType::Write || op.type == OpType::Fallocate) &&
         (op.mtime_sec != 0 || op.mtime_nsec != 0);
}

// Whether `path` is a valid relative path of the stream (see Op::path); `allow_root` accepts "".
bool validRelativePath(std::string_view path, bool allow_root);

// A directory's entries for SyncDir: (name, file type as S_IFMT bits) pairs.
struct DirEntry {
  std::string name;
  uint32_t type = 0;
  bool operator==(const DirEntry&) const = default;
};
void encodeEntries(const std::vector<DirEntry>& entries, std::string* out);
Result<std::vector<DirEntry>> decodeEntries(std::string_view data);

// Extended attributes for SyncXattrs: (name, value) pairs.
using XattrList = std::vector<std::pair<std::string, std::string>>;
void encodeXattrs(const XattrList& xattrs, std::string* out);
Result<XattrList> decodeXattrs(std::string_view data);

// Checks an operation against the stream's rules: its type is known, its paths are valid for the
// type (path2 a valid relative path for Rename/Link, a non-empty target without NUL for
// Symlink), the bounds above hold, string fields the type does not use are empty, and the file
// type bits of `mode` fit Create/Mkdir/Mknod. decodeOp applies it to every record and the applier
// to every operation, so neither trusts the other.
Status validateOp(const Op& op);

// Appends one self-delimiting record (u32 little-endian length, then the fields) to *out.
void encodeOp(const Op& op, std::string* out);
// The same record without the bytes of op.data, which follow it on the wire (so a sender can
// write a write's data from where it is, without copying it into the record).
void encodeOpHead(const Op& op, std::string* out);
// The stream's one control record, not an operation (no sequence number of its own): the
// primary waits for an acknowledgement of everything up to `upto`, so the secondary should send
// one as soon as it has applied that far (it otherwise acknowledges only now and then).
void encodeAckRequest(uint64_t upto, std::string* out);
// When the whole record at the front of `in` is an ack request: its `upto` and size (the same
// length checks as decodeOp). nullopt for anything else, complete or not: decodeOp decides.
std::optional<std::pair<uint64_t, size_t>> decodeAckRequest(std::string_view in);
// Decodes the record at the front of `in`. Returns the op and the bytes it used; Unavailable
// when `in` holds less than one whole record (read more); InvalidArgument naming the field for a
// malformed record (bad type, bound exceeded, invalid path, trailing bytes). Never reads past
// `in`.
Result<std::pair<Op, size_t>> decodeOp(std::string_view in);

}  // namespace halo::rfs
