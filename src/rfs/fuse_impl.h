#pragma once
// FuseFs's implementation (fuse_fs.h), shared by its files: fuse_fs.cc (inode table, activity
// log, libfuse glue, mount), fuse_ops.cc (lookups, attributes, namespace operations) and
// fuse_io.cc (open files, data, xattrs). Internal to the rfs layer.

#include "rfs/describe.h"
#include "rfs/fuse_fs.h"
#include "rfs/op_stat.h"

#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>  // renameat2
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace halo::rfs {
namespace fuse_internal {

// Attributes and entries may be cached by the kernel for this long: on the primary every change
// goes through this file system, so the cache can only be stale after a change behind our back.
constexpr double kCacheTimeoutSec = 1.0;
constexpr unsigned kMaxWrite = 1 << 20;
// A path deeper than this is a loop in the inode table (a bug), not a real tree.
constexpr int kMaxDepth = 4096;
constexpr int kMaxAdmitRounds = 1000;

// One (parent, name) link of an inode: the dentry tree we compute paths from.
struct Link {
  uint64_t parent;
  std::string name;
};

struct Node {
  uint64_t id = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  bool dir = false;
  bool in_dev_map = true;  // false once the real inode may be reused (last link removed)
  uint64_t nlookup = 0;    // the kernel's lookup count (forget decrements it)
  uint64_t children = 0;   // links of other nodes that name this one as their parent
  std::vector<Link> links;
  std::vector<int> open_fds;    // descriptors of open handles: fstat when no path is left
  uint64_t last_write_seq = 0;  // last replicated data change (write, truncate, fallocate)
  bool fsynced = false;         // fsync was called on it: its write-backs are likely for fsyncs
  // The activity log's epoch in which it was created (or moved) below an active directory:
  // while that epoch is the current one, changing it needs no activity log entry (0: none).
  uint64_t born = 0;
  // Its last name was removed while the kernel still knows it (and no handle is open): the
  // kernel may still flush times to it (writeback), which must succeed without a file to touch.
  std::optional<struct stat> orphan;
};

// The modification time a data change gave the real file: sent with the change (op.h), so that
// the peer's copy gets this time, not the one of its own clock when it applies the change (the
// writeback cache's later time update may come before the last write, or never).
inline void setResultingMtime(int fd, Op* op) {
  struct stat st;
  if (::fstat(fd, &st) == 0) {
    op->mtime_sec = st.st_mtim.tv_sec;
    op->mtime_nsec = st.st_mtim.tv_nsec;
  }
}

struct FileHandle {
  int fd = -1;
  uint64_t node = 0;
  bool sync = false;        // O_SYNC / O_DSYNC: every write waits for the peer
  uint64_t waited_seq = 0;  // data changes up to here were acknowledged for this handle
};

struct DirHandle {
  DIR* dir = nullptr;
  off_t offset = 0;
  struct dirent* entry = nullptr;  // read but not yet returned to the kernel
};

}  // namespace fuse_internal

using namespace fuse_internal;  // NOLINT: the implementation's own types

class FuseFs::Impl {
 public:
  Impl(FuseOptions options, OpSink& sink) : options_(std::move(options)), sink_(sink) {}
  ~Impl() {
    if (root_fd_ >= 0) {
      ::close(root_fd_);
    }
    if (note_key_made_) {
      ::pthread_key_delete(note_key_);
    }
  }

  Status start();
  Status stop();
  void ordered(const std::function<void()>& fn) {
    std::lock_guard lock(mu_);
    fn();
  }
  int rootFd() const { return root_fd_; }
  bool handlesKillPriv() const { return killpriv_v2_; }
  bool kernelOffersKillPriv() const { return killpriv_offered_; }
  uint64_t xattrReads() const { return xattr_reads_; }
  uint64_t lastDataChange(dev_t dev, ino_t ino) const {
    auto it = by_dev_ino_.find(std::make_pair(dev, ino));
    if (it == by_dev_ino_.end()) {
      return untracked_write_max_;
    }
    auto n = nodes_.find(it->second);
    return n == nodes_.end() ? untracked_write_max_ : n->second->last_write_seq;
  }

  // Low-level operations (called by libfuse worker threads through the C trampolines).
  void init(fuse_conn_info* conn);
  void lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void forget(fuse_ino_t ino, uint64_t n);
  void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
  void readlink(fuse_req_t req, fuse_ino_t ino);
  void makeNode(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev,
                const char* link_target);
  void unlink(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir);
  void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned flags);
  void link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);
  void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
  void read(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi);
  void write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi);
  void flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi, bool dir);
  void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void readdir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi);
  void releasedir(fuse_req_t req, fuse_file_info* fi);
  void statfs(fuse_req_t req);
  void setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags);
  void getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  void listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  void removexattr(fuse_req_t req, fuse_ino_t ino, const char* name);
  void fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                 fuse_file_info* fi);

 private:
  // FUSE_HANDLE_KILLPRIV_V2, which libfuse 3.14 cannot negotiate, through its custom I/O hooks
  // (fuse_raw.cc). After fuse_session_mount, before the loop.
  Status useRawIo();
  ssize_t readRequest(int fd, void* buf, size_t len);
  ssize_t writeReply(int fd, iovec* iov, int count);
  // The kernel asked, for the request this thread handles, to remove set-ID bits the caller
  // could not keep (a write or a truncation by an unprivileged process).
  bool killSuidgidAsked() const;
  // Removes them from the regular file `fd` (or `rel` if fd < 0): set-user-ID, and set-group-ID
  // if group-executable. `*mode` gets the new permission bits (0: nothing changed). Returns 0
  // or an errno.
  int dropSetIds(int fd, const char* rel, mode_t* mode);
  // Under mu_, outside a setattr (whose reply carries the new attributes): dropSetIds on node
  // `ino`'s open file `fd`; if that changed the mode, the kernel's cached one is made stale
  // (attributes only, which takes no inode lock: safe inside a request) and the peer gets it.
  // Returns 0 or an errno.
  int dropSetIdsOf(uint64_t ino, int fd) {
    mode_t mode = 0;
    const int err = dropSetIds(fd, nullptr, &mode);
    if (mode == 0) {
      return err;
    }
    fuse_lowlevel_notify_inval_inode(session_, ino, -1, 0);
    if (auto path = pathOf(ino); path && replicated(*path)) {
      Op op;
      op.type = OpType::SetAttr;
      op.path = std::move(*path);
      op.flags = kSetMode;
      op.mode = mode;
      submit(std::move(op));
    }
    return 0;
  }

  static FileHandle* fileHandle(fuse_file_info* fi) {
    return reinterpret_cast<FileHandle*>(static_cast<uintptr_t>(fi->fh));
  }
  // "." for the replicated directory itself, so *at() calls work on root_fd_.
  static const char* at(const std::string& rel) { return rel.empty() ? "." : rel.c_str(); }
  // The real file through /proc, for the calls that have no *at() form (xattrs): the magic link
  // resolves to root_fd_'s directory, under the FUSE mount, so it never re-enters this fs.
  std::string procPath(const std::string& rel) const {
    std::string p = "/proc/self/fd/" + std::to_string(root_fd_);
    if (!rel.empty()) {
      p += "/" + rel;
    }
    return p;
  }
  // The root is the magic link itself, which only the following calls resolve; below it the
  // l-variants act on a symlink itself, as the kernel asked.
  int xattrSet(const std::string& rel, const char* name, const char* value, size_t size,
               int flags) const {
    std::string p = procPath(rel);
    return rel.empty() ? ::setxattr(p.c_str(), name, value, size, flags)
                       : ::lsetxattr(p.c_str(), name, value, size, flags);
  }
  ssize_t xattrGet(const std::string& rel, const char* name, void* buf, size_t size) const {
    std::string p = procPath(rel);
    return rel.empty() ? ::getxattr(p.c_str(), name, buf, size)
                       : ::lgetxattr(p.c_str(), name, buf, size);
  }
  ssize_t xattrList(const std::string& rel, char* buf, size_t size) const {
    std::string p = procPath(rel);
    return rel.empty() ? ::listxattr(p.c_str(), buf, size) : ::llistxattr(p.c_str(), buf, size);
  }
  int xattrRemove(const std::string& rel, const char* name) const {
    std::string p = procPath(rel);
    return rel.empty() ? ::removexattr(p.c_str(), name) : ::lremovexattr(p.c_str(), name);
  }

  // Inode table; all of these need mu_.
  Node* node(uint64_t id) {
    auto it = nodes_.find(id);
    return it == nodes_.end() ? nullptr : it->second.get();
  }
  std::optional<std::string> pathOf(uint64_t id);
  std::optional<std::string> childPath(uint64_t parent, const char* name);
  bool replicated(const std::string& rel, bool dir = false) const {
    return !options_.replicated || options_.replicated(rel, dir);
  }
  // For an operation on an inode of either type.
  bool replicatedNode(const std::string& rel, uint64_t id) {
    Node* n = node(id);
    return replicated(rel, n != nullptr && n->dir);
  }
  Node& nodeFor(const struct stat& st);
  void addLink(Node& n, uint64_t parent, const std::string& name);
  // Removes the link (parent, name) from whatever node holds it; returns that node's id or 0.
  uint64_t detach(uint64_t parent, const std::string& name);
  void forgetDevIno(Node& n);
  void maybeErase(uint64_t id);
  fuse_entry_param entryFor(uint64_t parent, const std::string& name, const struct stat& st);
  // `wait`: when the caller waits for the peer's acknowledgement of it (OpSink, op.h).
  uint64_t submit(Op op, AckWait wait = AckWait::None) {
    const uint64_t seq = wait == AckWait::None ? sink_.submit(std::move(op))
                                               : sink_.submitAwaited(std::move(op), wait);
    if (admitted_ != nullptr) {
      admitted_->setSeq(seq);
    }
    return seq;
  }
  // The activity log (activity_log.h): before an operation changes anything, what it touches
  // is persisted unless it already is. `describe` states the need under mu_; it is stated again
  // after each wait for the log (mu_ is released meanwhile).
  class NeedBuilder;
  ActivityLog::Ticket admit(std::unique_lock<std::mutex>& lock,
                            const std::function<void(NeedBuilder&)>& describe);
  // While it lives, the submissions under mu_ record their sequence numbers in `ticket`.
  class Admitted {
   public:
    Admitted(Impl* impl, ActivityLog::Ticket* ticket) : impl_(impl) { impl_->admitted_ = ticket; }
    ~Admitted() { impl_->admitted_ = nullptr; }
    Admitted(const Admitted&) = delete;
    Admitted& operator=(const Admitted&) = delete;

   private:
    Impl* impl_;
  };
  // A regular file with another name than `path` (relative to the root).
  bool hasOtherNames(const std::string& path) const {
    struct stat st;
    return ::fstatat(root_fd_, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st.st_mode) && st.st_nlink > 1;
  }
  // A node created under `ticket`: born in its epoch.
  void markBorn(uint64_t id, const ActivityLog::Ticket& ticket) {
    if (Node* n = node(id)) {
      n->born = ticket.epoch();
    }
  }
  void waitAcked(uint64_t seq) {
    if (seq != 0) {
      sink_.waitAcked(seq);
    }
  }
  // Gives the created node the caller's ownership (we create as root) and the requested mode
  // (our own umask may have removed bits the caller asked for). Returns 0 or an errno.
  int adoptNode(const std::string& rel, int fd, fuse_req_t req, uint64_t parent, mode_t mode,
                bool symlink, struct stat* st);

  FuseOptions options_;
  OpSink& sink_;
  int root_fd_ = -1;
  ActivityLog::Ticket* admitted_ = nullptr;  // guarded by mu_
  std::atomic<bool> writeback_{false};

  // The ordering lock: local application and submission happen under it, so the stream's order
  // is the order of application. Also guards the inode table.
  std::mutex mu_;
  std::unordered_map<uint64_t, std::unique_ptr<Node>> nodes_;
  std::map<std::pair<dev_t, ino_t>, uint64_t> by_dev_ino_;
  std::map<std::pair<uint64_t, std::string>, uint64_t> dentries_;  // (parent, name) -> node
  uint64_t next_id_ = FUSE_ROOT_ID + 1;
  // The largest last_write_seq of nodes no longer reachable by (dev, ino): lastDataChange answers
  // it for an inode it does not track, so a change is never missed.
  uint64_t untracked_write_max_ = 0;

  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  // fuse_raw.cc: each request read leaves a note for the thread that handles it under this key.
  pthread_key_t note_key_{};
  bool note_key_made_ = false;
  std::atomic<uint64_t> init_unique_{0};  // the INIT request's until its reply (then 0)
  std::atomic<bool> killpriv_offered_{false};
  std::atomic<bool> killpriv_v2_{false};
  std::atomic<uint64_t> xattr_reads_{0};  // getxattr requests served
  std::string conn_abort_path_;  // /sys/fs/fuse/connections/<minor>/abort
  std::thread loop_;
  std::promise<void> loop_done_;
  std::future<void> loop_done_future_;
};

// What an operation needs from the activity log, stated from the inode table (under mu_).
// Paths that are not replicated need nothing.
class FuseFs::Impl::NeedBuilder {
 public:
  NeedBuilder(Impl& impl, ActivityLog& log) : impl_(impl), log_(log) {}

  // The data of node `id` in [offset, offset + length) changes.
  void data(uint64_t id, uint64_t offset, uint64_t length) {
    auto path = replicatedPath(id);
    if (!path || length == 0) {
      return;
    }
    const uint64_t zs = log_.zoneSize();
    const uint64_t last = offset + length - 1 < offset ? UINT64_MAX : offset + length - 1;
    for (uint64_t z = offset / zs; z <= last / zs; ++z) {
      add(ActivityLog::Kind::Zone, *path, z);
    }
  }
  // Every byte of node `id` from `offset` on may change: a truncate (what it cut reads as zeros
  // if the file grows again) or a collapsed or inserted range (what follows moves).
  void from(uint64_t id, uint64_t offset) {
    if (auto path = replicatedPath(id)) {
      add(ActivityLog::Kind::Tail, *path, offset / log_.zoneSize());
    }
  }
  // The metadata of node `id` changes.
  void meta(uint64_t id) {
    if (auto path = replicatedPath(id)) {
      add(ActivityLog::Kind::Meta, *path, 0);
    }
  }
  // The entries of directory node `id` change.
  void entries(uint64_t id) {
    if (auto path = replicatedPath(id)) {
      add(ActivityLog::Kind::Dir, *path, 0);
    }
  }
  // What `path` names is replaced by an object that existed before (rename over it).
  void replaced(const std::string& path) {
    if (impl_.replicated(path)) {
      notBorn();
      need_.keys.push_back({ActivityLog::Kind::Moved, impl_.options_.root, path, 0});
    }
  }
  // Another name for an existing object: beyond what a change log describes after a crash.
  void linked(const std::string& path) {
    if (impl_.replicated(path)) {
      notBorn();
      need_.keys.push_back({ActivityLog::Kind::Linked, impl_.options_.root, path, 0});
    }
  }
  ActivityLog::Need take() { return std::move(need_); }

 private:
  std::optional<std::string> replicatedPath(uint64_t id) {
    auto path = impl_.pathOf(id);
    if (!path || !impl_.replicatedNode(*path, id)) {
      return std::nullopt;
    }
    // Covered by its birth only if every part of the operation is (the same epoch).
    Node* n = impl_.node(id);
    const uint64_t born = n != nullptr ? n->born : 0;
    if (first_) {
      need_.born = born;
      first_ = false;
    } else if (need_.born != born) {
      need_.born = 0;
    }
    return path;
  }
  void notBorn() {
    first_ = false;
    need_.born = 0;
  }
  void add(ActivityLog::Kind kind, const std::string& path, uint64_t zone) {
    need_.keys.push_back({kind, impl_.options_.root, path, zone});
  }

  Impl& impl_;
  ActivityLog& log_;
  ActivityLog::Need need_;
  bool first_ = true;
};

}  // namespace halo::rfs
