#pragma once
// Tree comparison for `halo rfsverify` / `halo rfsdiff` and the full reintegration (DESIGN 6.4).
//
// The two trees live on different nodes, so the comparison works on manifests: one node walks
// its tree (walkTree), serialises the result (encodeManifest) and sends it; the peer decodes it
// (decodeManifest, which treats the bytes as untrusted) and compares it with its own walk
// (diffTrees). A manifest has one entry per file system object, sorted by path, with the
// metadata a resync restores and, for regular files, one digest per block, so that a content
// difference names the blocks to copy instead of the whole file.
//
// Thread-safety: the functions are reentrant; walkTree hashes on its own worker threads and
// joins them before returning.

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "rfs/digest.h"
#include "rfs/path_filter.h"

namespace halo::rfs {

struct TreeEntry {
  std::string path;          // relative to the root, components joined by '/'; "" is the root
  mode_t type_and_mode = 0;  // st_mode: S_IFMT bits and permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  int64_t mtime_nsec = 0;
  std::string symlink_target;  // symlinks only
  // 0, or an id shared by the names of one inode within this tree (a name whose other links
  // are all outside the tree, or excluded, gets 0). Ids are local to one manifest: compare
  // groups by their members, never by id.
  uint64_t link_group = 0;
  // XXH3-128 over the sorted (name, value) pairs of all extended attributes; "" when none.
  std::string xattr_digest;
  // Regular files, when requested: ceil(size / block_size) digests.
  std::vector<BlockDigest> block_digests;

  bool operator==(const TreeEntry&) const = default;
};

// The transferable result of a walk.
struct Manifest {
  uint64_t block_size = 0;         // of every block_digests; 0 when no digests were computed
  std::vector<TreeEntry> entries;  // sorted by path (bytewise), unique, entries[0] is the root

  bool operator==(const Manifest&) const = default;
};

struct WalkOptions {
  uint64_t block_size = 1 << 20;
  bool block_digests = true;
  // Called with each relative path but the root's; false excludes the entry and, for a
  // directory, everything under it. Null includes everything.
  PathFilter include;
  unsigned threads = 4;  // files are hashed in parallel, each by one sequential reader
};

struct WalkResult {
  Manifest manifest;
  // Local only, not part of the manifest: mount points skipped, entries that vanished or changed
  // while being walked ("skipped mount point mnt").
  std::vector<std::string> notes;
  uint64_t bytes_hashed = 0;
};

// Walks `root` (the root itself may be a symlink; nothing below it is followed), staying on the
// root's mount: mount points below it (other file systems and bind mounts alike) are skipped
// with a note. File data is read with O_NOATIME where permitted and dropped from the page cache
// after hashing, so a verification does not evict the working set of the services.
Result<WalkResult> walkTree(const std::string& root, const WalkOptions& options);

// Compact binary form: delta-encoded paths, varints, raw digests.
std::string encodeManifest(const Manifest& manifest);
// Untrusted input (it comes from the peer): every length and count is bounds-checked, paths must
// be relative, normalised and strictly sorted; InvalidArgument names what is wrong and where.
Result<Manifest> decodeManifest(std::string_view bytes);

enum class DiffKind {
  OnlyLocal,
  OnlyRemote,
  Type,
  Mode,
  Owner,
  Size,
  Mtime,
  Content,
  SymlinkTarget,
  Xattrs,
  HardLinks,
};
const char* diffKindName(DiffKind kind);

struct DiffEntry {
  std::string path;
  DiffKind kind = DiffKind::Content;
  std::string detail;            // "blocks 3, 7-9 differ", "size 10 vs 12"; local value first
  std::vector<uint64_t> blocks;  // Content: indexes of the differing blocks, ascending

  bool operator==(const DiffEntry&) const = default;
};

struct DiffOptions {
  // Regular files, symlinks and special files. A directory's mtime changes whenever an entry in
  // it does (a resync writing into it, too), so it is compared only on request.
  bool compare_mtime = true;
  bool compare_directory_mtime = false;
};

// Differences, sorted by path then kind. An entry whose type differs reports only Type; one present
// on one side only reports OnlyLocal / OnlyRemote (each entry of a missing subtree is listed).
// Content is compared when both sides have block digests; a size change also reports the
// differing blocks, counting blocks present on one side only. FailedPrecondition if both sides
// carry digests of different block sizes.
Result<std::vector<DiffEntry>> diffTrees(const Manifest& local, const Manifest& remote,
                                         const DiffOptions& options);

// One line for `halo rfsverify`: "content     data/db.bin: blocks 3, 7-9 differ". Control
// characters in the path are escaped so that a file name cannot forge lines.
std::string describeDiff(const DiffEntry& d);

// What a resync from local to remote would copy: files whose data is sent, and bytes (whole files
// for OnlyLocal, Type and Size without block digests; the differing blocks for Content).
struct DiffSummary {
  uint64_t files = 0;
  uint64_t bytes = 0;
};
DiffSummary summarize(const std::vector<DiffEntry>& diffs, const Manifest& local);

}  // namespace halo::rfs
