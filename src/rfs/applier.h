#pragma once
// Applier: the secondary's side of the replication stream (DESIGN 6.1). It applies each operation
// to the replicated directory through one descriptor of it. Every path is resolved with openat2
// and RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, and the last component is
// handled by the *at call on its parent's descriptor, so a hostile or buggy stream can neither
// leave the directory nor follow a symlink (the primary never crosses one: op.h).
//
// Write, truncate and fallocate only touch regular files: the descriptor is opened O_PATH and
// checked before it is reopened for writing, so a device node in the tree is never opened.
// Extended attributes are set with lsetxattr/lremovexattr on "/proc/self/fd/<parent>/<name>": that
// works on every file type (fsetxattr refuses O_PATH descriptors, and opening a special file to
// get a real one has side effects), without following the last component. It needs /proc.
//
// Thread-safety: not thread-safe; one receiver thread owns it.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/status.h"
#include "rfs/op.h"
#include "rfs/path_filter.h"

namespace halo::rfs {

// The secondary's answer to a SyncFile or VerifyBlocks record (reintegration, resync.h): the byte
// ranges of `path` whose content differs and must be sent. Every such record gets exactly one
// answer, possibly with no range, but a SyncFile with kSyncWholeFile (its content follows
// without being asked). A SyncDir with kSyncAnswerMissing is answered with the names of the
// entries the secondary lacks (`entries`).
struct NeedRanges {
  uint16_t root = 0;
  uint64_t seq = 0;  // of the record answered
  std::string path;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // (offset, length), ascending
  std::vector<std::string> entries;                   // names in directory `path`
};

struct ApplierOptions {
  bool sync_on_fsync = false;  // async="none": an Fsync op fsyncs (fdatasync) on this node too
  size_t open_files = 64;      // bound on cached open descriptors (the open-file limit can be low)
  uint16_t root = 0;           // this directory's index in the module's <rfs>
  // Relative path -> replicated (the <notreplicated> filter). What it excludes belongs to this
  // node alone: a SyncDir never removes it. Null: everything is replicated.
  PathFilter replicated;
  // Receives the answers of SyncFile and VerifyBlocks (required when the stream has them).
  std::function<void(NeedRanges)> on_need;
};

class Applier {
 public:
  // `root`: path of the replicated directory on this node; opened once (O_PATH|O_DIRECTORY).
  static Result<std::unique_ptr<Applier>> open(const std::string& root,
                                               ApplierOptions options = {});
  ~Applier();
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  // Applies one operation to the tree. Errors name the operation type, its path and errno's
  // text. Ops must come in sequence order (seq strictly increasing, else FailedPrecondition).
  // An invalid op (validateOp) is InvalidArgument. Only a successful op advances lastSeq(), so a
  // failed one may be retried; a failure can leave the op half done (e.g. Create done, chown not).
  Status apply(const Op& op);
  uint64_t lastSeq() const { return last_seq_; }
  // During a reintegration the secondary's tree differs from the primary's until the walk has
  // reached each path, so a live operation may not apply (its file not copied yet, a stale
  // directory in the way): tolerant mode clears what is in the way and otherwise skips the
  // operation, counting it; the walk brings those paths to the primary's state afterwards.
  void setTolerant(bool on) { tolerant_ = on; }
  uint64_t tolerated() const { return tolerated_; }
  // Where the answers of SyncFile / VerifyBlocks go (replaces ApplierOptions::on_need).
  void setNeedHandler(std::function<void(NeedRanges)> handler) {
    options_.on_need = std::move(handler);
  }
  // The replicated directory (O_PATH), e.g. to walk it for a verification.
  int rootFd() const { return root_fd_; }
  // Writes everything applied so far to the disk (syncfs of the directory's file system).
  Status syncToDisk() const;
  const std::string& lastTolerated() const { return last_tolerated_; }
  // Descriptors currently cached for writing (tests check the bound).
  size_t cachedFiles() const { return lru_.size(); }

 private:
  struct CachedFd {
    std::string path;
    int fd;
  };

  Applier(int root_fd, ApplierOptions options);

  Status applyLive(const Op& op);  // the operations of an application (Write .. Fsync)
  Status applyWrite(const Op& op);
  Status applyCreate(const Op& op);
  Status applyMknod(const Op& op);
  Status applyMkdir(const Op& op);
  Status applyRemove(const Op& op, int at_flags);
  Status applyRename(const Op& op);
  Status applyLink(const Op& op);
  Status applySymlink(const Op& op);
  Status applySetAttr(const Op& op);
  Status applyFallocate(const Op& op);
  Status applyXattr(const Op& op);
  Status applyFsync(const Op& op);
  // Reintegration records (applier_sync.cc).
  Status applySyncDir(const Op& op);
  Status applySyncFile(const Op& op);
  Status applyVerifyBlocks(const Op& op);
  Status applySyncSymlink(const Op& op);
  Status applySyncNode(const Op& op);
  Status applySyncLink(const Op& op);
  Status applySyncXattrs(const Op& op);
  // Tolerant mode: removes what would make a live namespace operation fail on a tree that is
  // not yet the primary's (an existing target, a stale non-empty directory).
  void clearTheWay(const Op& op);
  // Removes `path` and, for a directory, everything below it; absent is fine.
  Status removeTree(const std::string& path);

  // SetAttr's owner, mode and times (not the size) on an open regular file.
  Status setAttrOn(int fd, const Op& op);
  // A cached O_WRONLY descriptor of regular file `path`, opened (and the least recently used one
  // closed) on a miss.
  Result<int> writeFd(const std::string& path);
  void cacheFd(const std::string& path, int fd);
  // Closes the cached descriptors of `path` and of everything under it.
  void dropCached(const std::string& path);

  int root_fd_;
  ApplierOptions options_;
  uint64_t last_seq_ = 0;
  bool tolerant_ = false;
  uint64_t tolerated_ = 0;
  std::string last_tolerated_;
  // SyncDir entry lists split over several records (kSyncListMore), by path.
  std::unordered_map<std::string, std::vector<DirEntry>> pending_entries_;
  std::list<CachedFd> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<CachedFd>::iterator> by_path_;
};

}  // namespace halo::rfs
