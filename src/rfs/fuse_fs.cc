#include "rfs/fuse_fs.h"

#include "rfs/describe.h"
#include "rfs/op_stat.h"

#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>  // renameat2
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
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
namespace {

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
void setResultingMtime(int fd, Op* op) {
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

}  // namespace

class FuseFs::Impl {
 public:
  Impl(FuseOptions options, OpSink& sink) : options_(std::move(options)), sink_(sink) {}
  ~Impl() {
    if (root_fd_ >= 0) {
      ::close(root_fd_);
    }
  }

  Status start();
  Status stop();
  void ordered(const std::function<void()>& fn) {
    std::lock_guard lock(mu_);
    fn();
  }
  int rootFd() const { return root_fd_; }
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
  uint64_t submit(Op op) {
    const uint64_t seq = sink_.submit(std::move(op));
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
  std::string conn_abort_path_;  // /sys/fs/fuse/connections/<minor>/abort
  std::thread loop_;
  std::promise<void> loop_done_;
  std::future<void> loop_done_future_;
};

// ---- inode table ----------------------------------------------------------------------------

std::optional<std::string> FuseFs::Impl::pathOf(uint64_t id) {
  // A file with several names, some not replicated: a replicated one names its changes, or the
  // peer would miss them (its copy has the other name only).
  Node* self = node(id);
  if (self != nullptr && self->links.size() > 1 && options_.replicated) {
    std::optional<std::string> first;
    for (const Link& l : self->links) {
      auto parent = l.parent == FUSE_ROOT_ID ? std::optional<std::string>("") : pathOf(l.parent);
      if (!parent) {
        continue;
      }
      std::string p = parent->empty() ? l.name : *parent + "/" + l.name;
      if (replicated(p)) {
        return p;
      }
      if (!first) {
        first = std::move(p);
      }
    }
    return first;
  }
  std::vector<const std::string*> parts;
  uint64_t cur = id;
  for (int depth = 0; cur != FUSE_ROOT_ID; ++depth) {
    Node* n = node(cur);
    if (n == nullptr || n->links.empty() || depth > kMaxDepth) {
      return std::nullopt;
    }
    parts.push_back(&n->links.front().name);
    cur = n->links.front().parent;
  }
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!path.empty()) {
      path += '/';
    }
    path += **it;
  }
  return path;
}

std::optional<std::string> FuseFs::Impl::childPath(uint64_t parent, const char* name) {
  auto p = pathOf(parent);
  if (!p) {
    return std::nullopt;
  }
  return p->empty() ? std::string(name) : *p + "/" + name;
}

Node& FuseFs::Impl::nodeFor(const struct stat& st) {
  auto key = std::make_pair(st.st_dev, st.st_ino);
  auto it = by_dev_ino_.find(key);
  if (it != by_dev_ino_.end()) {
    if (Node* n = node(it->second)) {
      return *n;
    }
  }
  auto n = std::make_unique<Node>();
  n->id = next_id_++;
  n->dev = st.st_dev;
  n->ino = st.st_ino;
  n->dir = S_ISDIR(st.st_mode);
  // Known only from now on: whatever changed it before counts as recent (lastDataChange).
  n->last_write_seq = untracked_write_max_;
  Node& ref = *n;
  by_dev_ino_[key] = n->id;
  nodes_[n->id] = std::move(n);
  return ref;
}

void FuseFs::Impl::addLink(Node& n, uint64_t parent, const std::string& name) {
  auto key = std::make_pair(parent, name);
  auto it = dentries_.find(key);
  if (it != dentries_.end()) {
    if (it->second == n.id) {
      return;
    }
    // A stale link (the name now names another inode): the old one lost it.
    uint64_t old = detach(parent, name);
    maybeErase(old);
  }
  Node* p = node(parent);
  if (p == nullptr) {
    return;  // the kernel only names parents it looked up; nothing to link to otherwise
  }
  p->children++;
  n.links.push_back({parent, name});
  dentries_[key] = n.id;
}

uint64_t FuseFs::Impl::detach(uint64_t parent, const std::string& name) {
  auto it = dentries_.find(std::make_pair(parent, name));
  if (it == dentries_.end()) {
    return 0;
  }
  uint64_t id = it->second;
  dentries_.erase(it);
  if (Node* n = node(id)) {
    std::erase_if(n->links, [&](const Link& l) { return l.parent == parent && l.name == name; });
  }
  if (Node* p = node(parent)) {
    p->children--;
    maybeErase(parent);
  }
  return id;
}

void FuseFs::Impl::forgetDevIno(Node& n) {
  if (!n.in_dev_map) {
    return;
  }
  n.in_dev_map = false;
  untracked_write_max_ = std::max(untracked_write_max_, n.last_write_seq);
  auto it = by_dev_ino_.find(std::make_pair(n.dev, n.ino));
  if (it != by_dev_ino_.end() && it->second == n.id) {
    by_dev_ino_.erase(it);
  }
}

void FuseFs::Impl::maybeErase(uint64_t id) {
  if (id == FUSE_ROOT_ID) {
    return;
  }
  Node* n = node(id);
  if (n == nullptr || n->nlookup != 0 || n->children != 0 || !n->open_fds.empty()) {
    return;
  }
  std::vector<Link> links = std::move(n->links);
  n->links.clear();
  forgetDevIno(*n);
  nodes_.erase(id);
  for (const Link& l : links) {
    dentries_.erase(std::make_pair(l.parent, l.name));
    if (Node* p = node(l.parent)) {
      p->children--;
      maybeErase(l.parent);
    }
  }
}

fuse_entry_param FuseFs::Impl::entryFor(uint64_t parent, const std::string& name,
                                        const struct stat& st) {
  Node& n = nodeFor(st);
  addLink(n, parent, name);
  n.nlookup++;
  fuse_entry_param e;
  std::memset(&e, 0, sizeof(e));
  e.ino = n.id;
  e.attr = st;
  e.attr_timeout = kCacheTimeoutSec;
  e.entry_timeout = kCacheTimeoutSec;
  return e;
}

int FuseFs::Impl::adoptNode(const std::string& rel, int fd, fuse_req_t req, uint64_t parent,
                            mode_t mode, bool symlink, struct stat* st) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  uid_t uid = ctx->uid;
  gid_t gid = ctx->gid;
  auto stat_node = [&]() {
    return fd >= 0 ? ::fstat(fd, st) : ::fstatat(root_fd_, rel.c_str(), st, AT_SYMLINK_NOFOLLOW);
  };
  if (stat_node() < 0) {
    return errno;
  }
  // In a set-group-ID directory the new node keeps the directory's group, as the kernel gave it.
  auto parent_path = pathOf(parent);
  struct stat pst;
  if (parent_path && ::fstatat(root_fd_, at(*parent_path), &pst, 0) == 0 &&
      (pst.st_mode & S_ISGID) != 0) {
    gid = st->st_gid;
  }
  if (st->st_uid != uid || st->st_gid != gid) {
    int r = fd >= 0 ? ::fchown(fd, uid, gid)
                    : ::fchownat(root_fd_, rel.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
    if (r < 0 || stat_node() < 0) {
      return errno;
    }
  }
  if (!symlink) {
    // chown clears set-ID bits and our umask may have masked others: restore what was asked,
    // keeping a set-group-ID bit a directory inherited.
    mode_t want = (mode & 07777) | (S_ISDIR(st->st_mode) ? (st->st_mode & S_ISGID) : 0);
    if ((st->st_mode & 07777) != want) {
      int r = fd >= 0 ? ::fchmod(fd, want) : ::fchmodat(root_fd_, rel.c_str(), want, 0);
      if (r < 0 || stat_node() < 0) {
        return errno;
      }
    }
  }
  return 0;
}

// ---- activity log ---------------------------------------------------------------------------

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

ActivityLog::Ticket FuseFs::Impl::admit(std::unique_lock<std::mutex>& lock,
                                        const std::function<void(NeedBuilder&)>& describe) {
  ActivityLog* log = options_.activity;
  if (log == nullptr) {
    return {};
  }
  // Usually once or twice; more only if epochs turned over meanwhile.
  for (int round = 0; round < kMaxAdmitRounds; ++round) {
    NeedBuilder b(*this, *log);
    describe(b);
    ActivityLog::Need need = b.take();
    if (auto ticket = log->admit(need)) {
      return std::move(*ticket);
    }
    lock.unlock();
    Status s = log->activate(need);
    lock.lock();
    if (!s.ok()) {
      break;  // the log is broken: nothing is tracked any more, its owner knows
    }
  }
  return {};
}

// ---- operations -----------------------------------------------------------------------------

void FuseFs::Impl::init(fuse_conn_info* conn) {
  conn->max_write = kMaxWrite;
  if ((conn->capable & FUSE_CAP_WRITEBACK_CACHE) != 0) {
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    writeback_ = true;
  }
  if ((conn->capable & FUSE_CAP_SPLICE_WRITE) != 0) {
    conn->want |= FUSE_CAP_SPLICE_WRITE | (conn->capable & FUSE_CAP_SPLICE_MOVE);
  }
  // O_TRUNC then arrives as a separate setattr(size=0), which we replicate like any truncate;
  // and the kernel itself clears set-ID bits on write and chown, through setattr(mode).
  conn->want &= ~(FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV);
}

void FuseFs::Impl::lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) {
    fuse_reply_err(req, ENOENT);  // only asked for with export support, which we do not offer
    return;
  }
  std::unique_lock lock(mu_);
  auto path = childPath(parent, name);
  if (!path) {
    lock.unlock();
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st;
  if (::fstatat(root_fd_, path->c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    int err = errno;
    lock.unlock();
    fuse_reply_err(req, err);
    return;
  }
  fuse_entry_param e = entryFor(parent, name, st);
  lock.unlock();
  fuse_reply_entry(req, &e);
}

void FuseFs::Impl::forget(fuse_ino_t ino, uint64_t n) {
  std::lock_guard lock(mu_);
  Node* nd = node(ino);
  if (nd == nullptr || ino == FUSE_ROOT_ID) {
    return;
  }
  nd->nlookup = nd->nlookup > n ? nd->nlookup - n : 0;
  maybeErase(ino);
}

void FuseFs::Impl::getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  struct stat st;
  int r;
  if (fi != nullptr) {
    r = ::fstat(fileHandle(fi)->fd, &st);
  } else {
    std::lock_guard lock(mu_);
    auto path = pathOf(ino);
    Node* n = node(ino);
    if (path) {
      r = ::fstatat(root_fd_, at(*path), &st, AT_SYMLINK_NOFOLLOW);
    } else if (n != nullptr && !n->open_fds.empty()) {
      r = ::fstat(n->open_fds.front(), &st);
    } else if (n != nullptr && n->orphan) {
      st = *n->orphan;
      r = 0;
    } else {
      r = -1;
      errno = ENOENT;
    }
  }
  if (r < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_attr(req, &st, kCacheTimeoutSec);
}

void FuseFs::Impl::setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                           fuse_file_info* fi) {
  if (options_.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  std::unique_lock lock(mu_);
  ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) { b.meta(ino); });
  Admitted admitted(this, &ticket);
  auto path = pathOf(ino);
  Node* n = node(ino);
  int fd = fi != nullptr ? fileHandle(fi)->fd : -1;
  if (fd < 0 && !path && n != nullptr && !n->open_fds.empty()) {
    fd = n->open_fds.front();
  }
  if (fd < 0 && !path && n != nullptr && n->orphan) {
    // Nothing left on disk to change, nothing for the peer: remember what the kernel set.
    struct stat& o = *n->orphan;
    if ((to_set & FUSE_SET_ATTR_MODE) != 0) {
      o.st_mode = (o.st_mode & S_IFMT) | (attr->st_mode & 07777);
    }
    if ((to_set & FUSE_SET_ATTR_UID) != 0) {
      o.st_uid = attr->st_uid;
    }
    if ((to_set & FUSE_SET_ATTR_GID) != 0) {
      o.st_gid = attr->st_gid;
    }
    if ((to_set & FUSE_SET_ATTR_SIZE) != 0) {
      o.st_size = attr->st_size;
    }
    if ((to_set & FUSE_SET_ATTR_ATIME) != 0) {
      o.st_atim = attr->st_atim;
    }
    if ((to_set & FUSE_SET_ATTR_MTIME) != 0) {
      o.st_mtim = attr->st_mtim;
    }
    struct stat reply = o;
    lock.unlock();
    fuse_reply_attr(req, &reply, kCacheTimeoutSec);
    return;
  }
  if (fd < 0 && !path) {
    lock.unlock();
    fuse_reply_err(req, ENOENT);
    return;
  }
  const char* rel = path ? at(*path) : nullptr;
  Op op;
  op.type = OpType::SetAttr;
  int err = 0;
  if ((to_set & FUSE_SET_ATTR_MODE) != 0) {
    int r = fd >= 0 ? ::fchmod(fd, attr->st_mode & 07777)
                    : ::fchmodat(root_fd_, rel, attr->st_mode & 07777, 0);
    if (r < 0) {
      err = errno;
    } else {
      op.flags |= kSetMode;
      op.mode = attr->st_mode & 07777;
    }
  }
  if (err == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) != 0) {
    uid_t uid = (to_set & FUSE_SET_ATTR_UID) != 0 ? attr->st_uid : static_cast<uid_t>(-1);
    gid_t gid = (to_set & FUSE_SET_ATTR_GID) != 0 ? attr->st_gid : static_cast<gid_t>(-1);
    int r =
        fd >= 0 ? ::fchown(fd, uid, gid) : ::fchownat(root_fd_, rel, uid, gid, AT_SYMLINK_NOFOLLOW);
    if (r < 0) {
      err = errno;
    } else {
      if ((to_set & FUSE_SET_ATTR_UID) != 0) {
        op.flags |= kSetUid;
        op.uid = uid;
      }
      if ((to_set & FUSE_SET_ATTR_GID) != 0) {
        op.flags |= kSetGid;
        op.gid = gid;
      }
    }
  }
  if (err == 0 && (to_set & FUSE_SET_ATTR_SIZE) != 0) {
    int r;
    if (fd >= 0) {
      r = ::ftruncate(fd, attr->st_size);
    } else {
      int tfd = ::openat(root_fd_, rel, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
      r = tfd < 0 ? -1 : ::ftruncate(tfd, attr->st_size);
      if (tfd >= 0) {
        int saved = errno;
        ::close(tfd);
        errno = saved;
      }
    }
    if (r < 0) {
      err = errno;
    } else {
      op.flags |= kSetSize;
      op.length = static_cast<uint64_t>(attr->st_size);
    }
  }
  if (err == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) != 0) {
    struct timespec ts[2];
    ts[0].tv_sec = 0;
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1] = ts[0];
    if ((to_set & FUSE_SET_ATTR_ATIME_NOW) != 0) {
      ts[0].tv_nsec = UTIME_NOW;
    } else if ((to_set & FUSE_SET_ATTR_ATIME) != 0) {
      ts[0] = attr->st_atim;
    }
    if ((to_set & FUSE_SET_ATTR_MTIME_NOW) != 0) {
      ts[1].tv_nsec = UTIME_NOW;
    } else if ((to_set & FUSE_SET_ATTR_MTIME) != 0) {
      ts[1] = attr->st_mtim;
    }
    int r = fd >= 0 ? ::futimens(fd, ts) : ::utimensat(root_fd_, rel, ts, AT_SYMLINK_NOFOLLOW);
    if (r < 0) {
      err = errno;
    } else {
      op.flags |= ((to_set & FUSE_SET_ATTR_ATIME) != 0 ? kSetAtime : 0) |
                  ((to_set & FUSE_SET_ATTR_MTIME) != 0 ? kSetMtime : 0);
      op.atime_sec = ts[0].tv_sec;
      op.atime_nsec = ts[0].tv_nsec;
      op.mtime_sec = ts[1].tv_sec;
      op.mtime_nsec = ts[1].tv_nsec;
    }
  }
  struct stat st;
  if (err == 0) {
    int r = fd >= 0 ? ::fstat(fd, &st) : ::fstatat(root_fd_, rel, &st, AT_SYMLINK_NOFOLLOW);
    if (r < 0) {
      err = errno;
    } else if ((op.flags & (kSetAtime | kSetMtime | kSetSize)) != 0) {
      // The times the file really got (UTIME_NOW resolved, or set by the truncation itself), so
      // the peer matches exactly instead of stamping its own clock.
      if ((op.flags & kSetSize) != 0) {
        op.flags |= kSetMtime;
      }
      op.atime_sec = st.st_atim.tv_sec;
      op.atime_nsec = st.st_atim.tv_nsec;
      op.mtime_sec = st.st_mtim.tv_sec;
      op.mtime_nsec = st.st_mtim.tv_nsec;
    }
  }
  // What was applied is replicated even if a later part failed: the stream mirrors the disk.
  if (op.flags != 0 && path && replicatedNode(*path, ino)) {
    bool size_changed = (op.flags & kSetSize) != 0;
    op.path = *path;
    uint64_t seq = submit(std::move(op));
    if (n != nullptr && size_changed) {
      n->last_write_seq = seq;
    }
  }
  lock.unlock();
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_attr(req, &st, kCacheTimeoutSec);
}

void FuseFs::Impl::readlink(fuse_req_t req, fuse_ino_t ino) {
  std::unique_lock lock(mu_);
  auto path = pathOf(ino);
  lock.unlock();
  if (!path) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlinkat(root_fd_, at(*path), buf, sizeof(buf) - 1);
  if (n < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  buf[n] = '\0';
  fuse_reply_readlink(req, buf);
}

void FuseFs::Impl::makeNode(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                            dev_t rdev, const char* link_target) {
  if (options_.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  uint64_t seq = 0;
  int err = 0;
  fuse_entry_param e;
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) { b.entries(parent); });
    Admitted admitted(this, &ticket);
    auto path = childPath(parent, name);
    if (!path) {
      err = ENOENT;
    } else {
      int r;
      if (link_target != nullptr) {
        r = ::symlinkat(link_target, root_fd_, path->c_str());
      } else if (S_ISDIR(mode)) {
        r = ::mkdirat(root_fd_, path->c_str(), mode & 07777);
      } else {
        r = ::mknodat(root_fd_, path->c_str(), mode, rdev);
      }
      struct stat st;
      if (r < 0) {
        err = errno;
      } else {
        err = adoptNode(*path, -1, req, parent, mode, link_target != nullptr, &st);
      }
      if (r == 0 && err == 0) {
        e = entryFor(parent, name, st);
        markBorn(e.ino, ticket);
      } else if (r == 0 && ::fstatat(root_fd_, path->c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        std::memset(&st, 0, sizeof(st));
        st.st_mode = mode;
      }
      // A node that exists locally exists in the stream, even if adopting it failed half way.
      if (r == 0 && replicated(*path, S_ISDIR(mode))) {
        Op op;
        op.path = *path;
        op.uid = st.st_uid;
        op.gid = st.st_gid;
        if (link_target != nullptr) {
          op.type = OpType::Symlink;
          op.path2 = link_target;
        } else if (S_ISDIR(mode)) {
          op.type = OpType::Mkdir;
          op.mode = st.st_mode & 07777;
        } else if (S_ISREG(mode)) {
          op.type = OpType::Create;
          op.mode = S_IFREG | (st.st_mode & 07777);
        } else {
          op.type = OpType::Mknod;
          op.mode = st.st_mode;
          op.rdev = st.st_rdev;
        }
        seq = submit(std::move(op));
        if (err == 0) {
          seq = submit(timesOf(*path, st));
        }
      }
    }
  }
  waitAcked(seq);
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_entry(req, &e);
}

void FuseFs::Impl::unlink(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir) {
  if (options_.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  uint64_t seq = 0;
  int err = 0;
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) { b.entries(parent); });
    Admitted admitted(this, &ticket);
    auto path = childPath(parent, name);
    struct stat st;
    if (!path) {
      err = ENOENT;
    } else if (::fstatat(root_fd_, path->c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 ||
               ::unlinkat(root_fd_, path->c_str(), dir ? AT_REMOVEDIR : 0) < 0) {
      err = errno;
    } else {
      uint64_t id = detach(parent, name);
      if (Node* n = node(id)) {
        // The real inode number can be reused once no name is left for it on disk.
        if (dir || st.st_nlink <= 1) {
          forgetDevIno(*n);
          n->orphan = st;
          n->orphan->st_nlink = 0;
        }
        maybeErase(id);
      }
      if (replicated(*path, dir)) {
        Op op;
        op.type = dir ? OpType::Rmdir : OpType::Unlink;
        op.path = *path;
        seq = submit(std::move(op));
      }
    }
  }
  waitAcked(seq);
  fuse_reply_err(req, err);
}

void FuseFs::Impl::rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                          const char* newname, unsigned flags) {
  if (options_.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  uint64_t seq = 0;
  int err = 0;
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) {
      b.entries(parent);
      b.entries(newparent);
      // A name that keeps its place but changes its object: a crash must not hide it.
      auto target = childPath(newparent, newname);
      struct stat ts;
      if (target && ::fstatat(root_fd_, target->c_str(), &ts, AT_SYMLINK_NOFOLLOW) == 0) {
        b.replaced(*target);
        if ((flags & RENAME_EXCHANGE) != 0) {
          if (auto source = childPath(parent, name)) {
            b.replaced(*source);
          }
        }
      }
    });
    Admitted admitted(this, &ticket);
    auto from = childPath(parent, name);
    auto to = childPath(newparent, newname);
    struct stat from_st;
    struct stat to_st;
    bool had_target = false;
    if (!from || !to) {
      err = ENOENT;
    } else if (::fstatat(root_fd_, from->c_str(), &from_st, AT_SYMLINK_NOFOLLOW) < 0) {
      err = errno;
    } else {
      had_target = ::fstatat(root_fd_, to->c_str(), &to_st, AT_SYMLINK_NOFOLLOW) == 0;
      if (::renameat2(root_fd_, from->c_str(), root_fd_, to->c_str(), flags) < 0) {
        err = errno;
      }
    }
    if (err == 0) {
      if ((flags & RENAME_EXCHANGE) != 0) {
        uint64_t a = detach(parent, name);
        uint64_t b = detach(newparent, newname);
        if (Node* na = node(a)) {
          addLink(*na, newparent, newname);
        }
        if (Node* nb = node(b)) {
          addLink(*nb, parent, name);
        }
        maybeErase(a);
        maybeErase(b);
      } else {
        uint64_t old = detach(newparent, newname);
        if (Node* o = node(old)) {
          if (had_target && (S_ISDIR(to_st.st_mode) || to_st.st_nlink <= 1)) {
            forgetDevIno(*o);
            o->orphan = to_st;
            o->orphan->st_nlink = 0;
          }
          maybeErase(old);
        }
        uint64_t moved = detach(parent, name);
        if (Node* m = node(moved)) {
          addLink(*m, newparent, newname);
          maybeErase(moved);
        }
      }
      bool r1 = replicated(*from, S_ISDIR(from_st.st_mode));
      bool r2 = replicated(*to, S_ISDIR(from_st.st_mode));
      Op op;
      op.path = *from;
      if (r1 && r2) {
        op.type = OpType::Rename;
        op.path2 = *to;
        op.flags = static_cast<int32_t>(flags);
        op.mode = from_st.st_mode & S_IFMT;  // for the reintegration's bookkeeping
        seq = submit(std::move(op));
      } else if (r1 != r2) {
        // Across the boundary of the replicated part: for the peer, what left it is gone and
        // what came in is new (the peer never had its source).
        const std::string& gone = r1 ? *from : *to;
        const bool gone_exists = r1 || (had_target && (flags & RENAME_NOREPLACE) == 0);
        if (gone_exists) {
          const bool dir = r1 ? S_ISDIR(from_st.st_mode) : S_ISDIR(to_st.st_mode);
          Op rm;
          rm.type = dir ? OpType::Rmdir : OpType::Unlink;
          rm.path = gone;
          seq = submit(std::move(rm));
        }
        const bool came_in = r2 || (flags & RENAME_EXCHANGE) != 0;
        if (came_in) {
          const uint64_t d = describeForPeer(
              root_fd_, r2 ? *to : *from, [this](Op o) { return submit(std::move(o)); },
              options_.replicated);
          seq = std::max(seq, d);
        }
      }
    }
  }
  waitAcked(seq);
  fuse_reply_err(req, err);
}

void FuseFs::Impl::link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  if (options_.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  uint64_t seq = 0;
  int err = 0;
  fuse_entry_param e;
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) {
      b.entries(newparent);
      if (auto to = childPath(newparent, newname)) {
        b.linked(*to);
      }
    });
    Admitted admitted(this, &ticket);
    auto from = pathOf(ino);
    auto to = childPath(newparent, newname);
    struct stat st;
    if (!from || !to) {
      err = ENOENT;
    } else if (::linkat(root_fd_, from->c_str(), root_fd_, to->c_str(), 0) < 0 ||
               ::fstatat(root_fd_, to->c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      err = errno;
    } else {
      e = entryFor(newparent, newname, st);
      if (replicated(*to)) {
        Op op;
        op.type = OpType::Link;
        op.path = *from;
        op.path2 = *to;
        // The peer lacks a source outside the replicated part: a file of its own there.
        seq = replicated(*from) ? submit(std::move(op))
                                : describeForPeer(
                                      root_fd_, *to, [this](Op o) { return submit(std::move(o)); },
                                      options_.replicated);
      }
    }
  }
  waitAcked(seq);
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_entry(req, &e);
}

void FuseFs::Impl::open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int acc = fi->flags & O_ACCMODE;
  if (options_.read_only && (acc != O_RDONLY || (fi->flags & O_TRUNC) != 0)) {
    fuse_reply_err(req, EROFS);
    return;
  }
  int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_APPEND | O_DIRECT);
  // With writeback caching the kernel reads pages of write-only files and handles O_APPEND
  // itself (it sends the offset); our pwrite must honor the offset it sends in any case.
  if (writeback_ && acc == O_WRONLY) {
    flags = (flags & ~O_ACCMODE) | O_RDWR;
  }
  uint64_t seq = 0;
  int err = 0;
  auto h = std::make_unique<FileHandle>();
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket;
    if ((flags & O_TRUNC) != 0) {
      ticket = admit(lock, [&](NeedBuilder& b) { b.meta(ino); });
    }
    Admitted admitted(this, &ticket);
    auto path = pathOf(ino);
    Node* n = node(ino);
    if (!path || n == nullptr) {
      err = ENOENT;
    } else {
      h->fd = ::openat(root_fd_, at(*path), flags | O_CLOEXEC | O_NOFOLLOW);
      if (h->fd < 0) {
        err = errno;
      } else {
        h->node = ino;
        h->sync = (fi->flags & (O_SYNC | O_DSYNC)) != 0;
        h->waited_seq = n->last_write_seq;
        n->open_fds.push_back(h->fd);
        if ((flags & O_TRUNC) != 0 && replicated(*path)) {
          Op op;
          op.type = OpType::SetAttr;
          op.path = *path;
          op.flags = kSetSize;
          op.length = 0;
          seq = submit(std::move(op));
          n->last_write_seq = seq;
        }
      }
    }
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fi->fh = reinterpret_cast<uintptr_t>(h.release());
  // Nothing else changes the real files while we are primary: cached pages stay valid.
  fi->keep_cache = 1;
  if (fuse_reply_open(req, fi) != 0) {
    release(nullptr, ino, fi);
  }
}

void FuseFs::Impl::create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                          fuse_file_info* fi) {
  if (options_.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  int acc = fi->flags & O_ACCMODE;
  int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_APPEND | O_DIRECT | O_TRUNC);
  if (writeback_ && acc == O_WRONLY) {
    flags = (flags & ~O_ACCMODE) | O_RDWR;
  }
  uint64_t seq = 0;
  int err = 0;
  fuse_entry_param e;
  auto h = std::make_unique<FileHandle>();
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) { b.entries(parent); });
    Admitted admitted(this, &ticket);
    auto path = childPath(parent, name);
    struct stat st;
    bool created = false;
    if (!path) {
      err = ENOENT;
    } else {
      // O_EXCL tells a file we made (replicated as Create) from one that appeared meanwhile.
      h->fd = ::openat(root_fd_, path->c_str(), flags | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                       mode & 07777);
      created = h->fd >= 0;
      if (h->fd < 0 && errno == EEXIST && (fi->flags & O_EXCL) == 0) {
        h->fd = ::openat(root_fd_, path->c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
      }
      if (h->fd < 0) {
        err = errno;
      } else if (created) {
        err = adoptNode(*path, h->fd, req, parent, mode, false, &st);
      } else if (::fstat(h->fd, &st) < 0) {
        err = errno;
      }
    }
    if (created && replicated(*path)) {
      Op op;
      op.type = OpType::Create;
      op.path = *path;
      op.mode = S_IFREG | (err == 0 ? st.st_mode & 07777 : mode & 07777);
      op.uid = err == 0 ? st.st_uid : 0;
      op.gid = err == 0 ? st.st_gid : 0;
      seq = submit(std::move(op));
      if (err == 0) {
        seq = submit(timesOf(*path, st));
      }
    }
    if (h->fd >= 0 && err == 0) {
      e = entryFor(parent, name, st);
      if (created) {
        markBorn(e.ino, ticket);
      }
      Node* n = node(e.ino);
      if (created && seq != 0) {
        n->last_write_seq = std::max(n->last_write_seq, seq);  // a new content, from empty
      }
      h->node = e.ino;
      h->sync = (fi->flags & (O_SYNC | O_DSYNC)) != 0;
      h->waited_seq = n->last_write_seq;
      n->open_fds.push_back(h->fd);
    }
  }
  waitAcked(seq);
  if (err != 0) {
    if (h->fd >= 0) {
      ::close(h->fd);
    }
    fuse_reply_err(req, err);
    return;
  }
  fi->fh = reinterpret_cast<uintptr_t>(h.release());
  fi->keep_cache = 1;
  if (fuse_reply_create(req, &e, fi) != 0) {
    release(nullptr, e.ino, fi);
  }
}

void FuseFs::Impl::read(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi) {
  fuse_bufvec buf;
  std::memset(&buf, 0, sizeof(buf));
  buf.count = 1;
  buf.buf[0].size = size;
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fileHandle(fi)->fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void FuseFs::Impl::write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                         fuse_file_info* fi) {
  FileHandle* h = fileHandle(fi);
  uint64_t seq = 0;
  ssize_t n;
  int err = 0;
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket =
        admit(lock, [&](NeedBuilder& b) { b.data(ino, static_cast<uint64_t>(off), size); });
    Admitted admitted(this, &ticket);
    n = ::pwrite(h->fd, buf, size, off);
    if (n < 0) {
      err = errno;
    } else if (n > 0) {
      // An inode with no link left (unlinked while open) has nothing to name on the peer.
      auto path = pathOf(ino);
      if (path && replicated(*path)) {
        Op op;
        op.type = OpType::Write;
        op.path = std::move(*path);
        op.offset = static_cast<uint64_t>(off);
        op.data.assign(buf, static_cast<size_t>(n));
        setResultingMtime(h->fd, &op);
        seq = submit(std::move(op));
        if (Node* nd = node(ino)) {
          nd->last_write_seq = seq;
        }
      }
    }
  }
  if (h->sync) {
    waitAcked(seq);
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_write(req, static_cast<size_t>(n));
}

void FuseFs::Impl::flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  FileHandle* h = fileHandle(fi);
  uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    Node* n = node(ino);
    if (n != nullptr && n->last_write_seq > h->waited_seq) {
      seq = n->last_write_seq;
      h->waited_seq = seq;
    }
  }
  // close() of a written file returns once the peer has the data (DESIGN 6.2).
  waitAcked(seq);
  fuse_reply_err(req, 0);
}

void FuseFs::Impl::release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  FileHandle* h = fileHandle(fi);
  uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    if (Node* n = node(ino)) {
      if (n->last_write_seq > h->waited_seq) {
        seq = n->last_write_seq;
      }
      auto it = std::find(n->open_fds.begin(), n->open_fds.end(), h->fd);
      if (it != n->open_fds.end()) {
        n->open_fds.erase(it);
      }
      ::close(h->fd);  // under the lock: the number must not be reused while still listed
      maybeErase(ino);
    } else {
      ::close(h->fd);
    }
  }
  delete h;
  waitAcked(seq);
  if (req != nullptr) {
    fuse_reply_err(req, 0);
  }
}

void FuseFs::Impl::fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi,
                         bool dir) {
  int fd = -1;
  if (fi != nullptr) {
    fd = dir ? ::dirfd(reinterpret_cast<DirHandle*>(static_cast<uintptr_t>(fi->fh))->dir)
             : fileHandle(fi)->fd;
  }
  int owned_fd = -1;
  if (fd < 0) {
    std::lock_guard lock(mu_);
    auto path = pathOf(ino);
    if (path) {
      owned_fd = ::openat(root_fd_, at(*path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      fd = owned_fd;
    }
  }
  if (fd < 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  // The peer's part goes first, so that its round trip overlaps the local disk flush: an fsync
  // then costs the longer of the two, not their sum. Everything written before this fsync was
  // submitted before it, so its acknowledgement covers them. If the local flush fails, the peer
  // has merely flushed too.
  uint64_t seq = 0;
  if (!options_.read_only) {
    std::lock_guard lock(mu_);
    auto path = pathOf(ino);
    if (path && replicated(*path, dir)) {
      Op op;
      op.type = OpType::Fsync;
      op.path = *path;
      op.datasync = datasync != 0;
      seq = submit(std::move(op));
    }
  }
  // Not under the ordering lock: a slow disk flush must not stall every other operation.
  int r = datasync != 0 ? ::fdatasync(fd) : ::fsync(fd);
  int err = r < 0 ? errno : 0;
  if (owned_fd >= 0) {
    ::close(owned_fd);
  }
  waitAcked(seq);
  if (err == 0 && !dir && fi != nullptr) {
    std::lock_guard lock(mu_);
    fileHandle(fi)->waited_seq = std::max(fileHandle(fi)->waited_seq, seq);
  }
  fuse_reply_err(req, err);
}

void FuseFs::Impl::opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int fd;
  {
    std::lock_guard lock(mu_);
    auto path = pathOf(ino);
    if (!path) {
      errno = ENOENT;
      fd = -1;
    } else {
      fd = ::openat(root_fd_, at(*path), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    }
  }
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  auto d = std::make_unique<DirHandle>();
  d->dir = ::fdopendir(fd);
  if (d->dir == nullptr) {
    int err = errno;
    ::close(fd);
    fuse_reply_err(req, err);
    return;
  }
  fi->fh = reinterpret_cast<uintptr_t>(d.get());
  if (fuse_reply_open(req, fi) == 0) {
    d.release();
  } else {
    ::closedir(d->dir);
  }
}

void FuseFs::Impl::readdir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi) {
  auto* d = reinterpret_cast<DirHandle*>(static_cast<uintptr_t>(fi->fh));
  std::vector<char> buf(size);
  size_t used = 0;
  if (off != d->offset) {
    ::seekdir(d->dir, off);
    d->entry = nullptr;
    d->offset = off;
  }
  int err = 0;
  while (true) {
    if (d->entry == nullptr) {
      errno = 0;
      d->entry = ::readdir(d->dir);
      if (d->entry == nullptr) {
        err = errno;
        break;
      }
    }
    struct stat st;
    std::memset(&st, 0, sizeof(st));
    st.st_ino = d->entry->d_ino;
    st.st_mode = static_cast<mode_t>(d->entry->d_type) << 12;
    off_t next = d->entry->d_off;
    size_t len =
        fuse_add_direntry(req, buf.data() + used, size - used, d->entry->d_name, &st, next);
    if (len > size - used) {
      break;
    }
    used += len;
    d->entry = nullptr;
    d->offset = next;
  }
  // An error after some entries is reported on the next call, which starts with nothing.
  if (err != 0 && used == 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void FuseFs::Impl::releasedir(fuse_req_t req, fuse_file_info* fi) {
  auto* d = reinterpret_cast<DirHandle*>(static_cast<uintptr_t>(fi->fh));
  ::closedir(d->dir);
  delete d;
  fuse_reply_err(req, 0);
}

void FuseFs::Impl::statfs(fuse_req_t req) {
  struct statvfs st;
  if (::fstatvfs(root_fd_, &st) < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_statfs(req, &st);
}

void FuseFs::Impl::setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                            size_t size, int flags) {
  if (options_.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  int err = 0;
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) { b.meta(ino); });
    Admitted admitted(this, &ticket);
    auto path = pathOf(ino);
    if (!path) {
      err = ENOENT;
    } else if (xattrSet(*path, name, value, size, flags) < 0) {
      err = errno;
    } else if (replicatedNode(*path, ino)) {
      Op op;
      op.type = OpType::SetXattr;
      op.path = *path;
      op.name = name;
      op.data.assign(value, size);
      op.flags = flags;
      // No wait: like other metadata, made durable on the peer by the next fsync.
      submit(std::move(op));
    }
  }
  fuse_reply_err(req, err);
}

void FuseFs::Impl::getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  std::unique_lock lock(mu_);
  auto path = pathOf(ino);
  lock.unlock();
  if (!path) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  if (size == 0) {
    ssize_t n = xattrGet(*path, name, nullptr, 0);
    if (n < 0) {
      fuse_reply_err(req, errno);
    } else {
      fuse_reply_xattr(req, static_cast<size_t>(n));
    }
    return;
  }
  std::vector<char> buf(size);
  ssize_t n = xattrGet(*path, name, buf.data(), size);
  if (n < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
}

void FuseFs::Impl::listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::unique_lock lock(mu_);
  auto path = pathOf(ino);
  lock.unlock();
  if (!path) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  if (size == 0) {
    ssize_t n = xattrList(*path, nullptr, 0);
    if (n < 0) {
      fuse_reply_err(req, errno);
    } else {
      fuse_reply_xattr(req, static_cast<size_t>(n));
    }
    return;
  }
  std::vector<char> buf(size);
  ssize_t n = xattrList(*path, buf.data(), size);
  if (n < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
}

void FuseFs::Impl::removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  if (options_.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  int err = 0;
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) { b.meta(ino); });
    Admitted admitted(this, &ticket);
    auto path = pathOf(ino);
    if (!path) {
      err = ENOENT;
    } else if (xattrRemove(*path, name) < 0) {
      err = errno;
    } else if (replicatedNode(*path, ino)) {
      Op op;
      op.type = OpType::RemoveXattr;
      op.path = *path;
      op.name = name;
      submit(std::move(op));
    }
  }
  fuse_reply_err(req, err);
}

void FuseFs::Impl::fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                             fuse_file_info* fi) {
  if (options_.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  int err = 0;
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) {
      b.data(ino, static_cast<uint64_t>(offset), static_cast<uint64_t>(length));
      b.meta(ino);
    });
    Admitted admitted(this, &ticket);
    if (::fallocate(fileHandle(fi)->fd, mode, offset, length) < 0) {
      err = errno;
    } else {
      auto path = pathOf(ino);
      if (path && replicated(*path)) {
        Op op;
        op.type = OpType::Fallocate;
        op.path = *path;
        op.flags = mode;
        op.offset = static_cast<uint64_t>(offset);
        op.length = static_cast<uint64_t>(length);
        setResultingMtime(fileHandle(fi)->fd, &op);
        uint64_t seq = submit(std::move(op));
        if (Node* n = node(ino)) {
          n->last_write_seq = seq;
        }
      }
    }
  }
  fuse_reply_err(req, err);
}

// ---- libfuse glue ---------------------------------------------------------------------------

namespace {

FuseFs::Impl* self(fuse_req_t req) { return static_cast<FuseFs::Impl*>(fuse_req_userdata(req)); }

fuse_lowlevel_ops makeOps() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof(ops));
  ops.init = [](void* userdata, fuse_conn_info* conn) {
    static_cast<FuseFs::Impl*>(userdata)->init(conn);
  };
  ops.lookup = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
    self(req)->lookup(req, parent, name);
  };
  ops.forget = [](fuse_req_t req, fuse_ino_t ino, uint64_t n) {
    self(req)->forget(ino, n);
    fuse_reply_none(req);
  };
  ops.forget_multi = [](fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    for (size_t i = 0; i < count; ++i) {
      self(req)->forget(forgets[i].ino, forgets[i].nlookup);
    }
    fuse_reply_none(req);
  };
  ops.getattr = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    self(req)->getattr(req, ino, fi);
  };
  ops.setattr = [](fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                   fuse_file_info* fi) { self(req)->setattr(req, ino, attr, to_set, fi); };
  ops.readlink = [](fuse_req_t req, fuse_ino_t ino) { self(req)->readlink(req, ino); };
  ops.mknod = [](fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
    self(req)->makeNode(req, parent, name, mode, rdev, nullptr);
  };
  ops.mkdir = [](fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    self(req)->makeNode(req, parent, name, S_IFDIR | (mode & 07777), 0, nullptr);
  };
  ops.symlink = [](fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
    self(req)->makeNode(req, parent, name, S_IFLNK | 0777, 0, target);
  };
  ops.unlink = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
    self(req)->unlink(req, parent, name, false);
  };
  ops.rmdir = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
    self(req)->unlink(req, parent, name, true);
  };
  ops.rename = [](fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                  const char* newname, unsigned flags) {
    self(req)->rename(req, parent, name, newparent, newname, flags);
  };
  ops.link = [](fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
    self(req)->link(req, ino, newparent, newname);
  };
  ops.open = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    self(req)->open(req, ino, fi);
  };
  ops.create = [](fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                  fuse_file_info* fi) { self(req)->create(req, parent, name, mode, fi); };
  ops.read = [](fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    self(req)->read(req, size, off, fi);
  };
  ops.write = [](fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                 fuse_file_info* fi) { self(req)->write(req, ino, buf, size, off, fi); };
  ops.flush = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    self(req)->flush(req, ino, fi);
  };
  ops.release = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    self(req)->release(req, ino, fi);
  };
  ops.fsync = [](fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
    self(req)->fsync(req, ino, datasync, fi, false);
  };
  ops.opendir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    self(req)->opendir(req, ino, fi);
  };
  ops.readdir = [](fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    self(req)->readdir(req, size, off, fi);
  };
  ops.releasedir = [](fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    self(req)->releasedir(req, fi);
  };
  ops.fsyncdir = [](fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
    self(req)->fsync(req, ino, datasync, fi, true);
  };
  ops.statfs = [](fuse_req_t req, fuse_ino_t) { self(req)->statfs(req); };
  ops.setxattr = [](fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                    size_t size,
                    int flags) { self(req)->setxattr(req, ino, name, value, size, flags); };
  ops.getxattr = [](fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    self(req)->getxattr(req, ino, name, size);
  };
  ops.listxattr = [](fuse_req_t req, fuse_ino_t ino, size_t size) {
    self(req)->listxattr(req, ino, size);
  };
  ops.removexattr = [](fuse_req_t req, fuse_ino_t ino, const char* name) {
    self(req)->removexattr(req, ino, name);
  };
  ops.fallocate = [](fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                     fuse_file_info* fi) {
    self(req)->fallocate(req, ino, mode, offset, length, fi);
  };
  return ops;
}

// "major:minor" of the mount at `dir`, from /proc/self/mountinfo (last match: the top mount).
std::string mountDevice(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::string dev;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, majmin, root, point;
    fields >> id >> parent >> majmin >> root >> point;
    if (point == dir) {
      dev = majmin;
    }
  }
  return dev;
}

}  // namespace

Status FuseFs::Impl::start() {
  // The canonical path is what the mount table shows and what umount2 must name.
  char* real = ::realpath(options_.dir.c_str(), nullptr);
  if (real == nullptr) {
    return errnoStatus("realpath " + options_.dir, errno);
  }
  options_.dir = real;
  ::free(real);
  // Opened before the mount hides the real directory: every operation goes through it.
  root_fd_ = ::open(options_.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd_ < 0) {
    return errnoStatus("open " + options_.dir, errno);
  }
  struct stat st;
  if (::fstat(root_fd_, &st) < 0) {
    return errnoStatus("fstat " + options_.dir, errno);
  }
  auto root = std::make_unique<Node>();
  root->id = FUSE_ROOT_ID;
  root->dev = st.st_dev;
  root->ino = st.st_ino;
  root->nlookup = 1;
  by_dev_ino_[{st.st_dev, st.st_ino}] = FUSE_ROOT_ID;
  nodes_[FUSE_ROOT_ID] = std::move(root);

  // Permissions are checked by the kernel against the attributes we return (we run as root, so
  // our own calls would allow everything); allow_other because applications are other users.
  std::vector<std::string> argv_store = {
      "halo-rfs", "-o", "allow_other,default_permissions,fsname=halo-rfs,subtype=halo-rfs"};
  std::vector<char*> argv;
  for (auto& a : argv_store) {
    argv.push_back(a.data());
  }
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  static const fuse_lowlevel_ops kOps = makeOps();
  session_ = fuse_session_new(&args, &kOps, sizeof(kOps), this);
  fuse_opt_free_args(&args);
  if (session_ == nullptr) {
    return internalError("fuse_session_new failed for " + options_.dir);
  }
  if (fuse_session_mount(session_, options_.dir.c_str()) != 0) {
    fuse_session_destroy(session_);
    session_ = nullptr;
    return internalError("fuse_session_mount " + options_.dir + " failed");
  }
  mounted_ = true;
  std::string majmin = mountDevice(options_.dir);
  if (auto colon = majmin.find(':'); colon != std::string::npos) {
    conn_abort_path_ = "/sys/fs/fuse/connections/" + majmin.substr(colon + 1) + "/abort";
  }
  loop_done_future_ = loop_done_.get_future();
  loop_ = std::thread([this] {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, 1);
    fuse_loop_cfg_set_max_threads(cfg, std::max(1u, options_.threads));
    fuse_session_loop_mt(session_, cfg);
    fuse_loop_cfg_destroy(cfg);
    loop_done_.set_value();
  });
  return okStatus();
}

Status FuseFs::Impl::stop() {
  if (!mounted_) {
    return okStatus();
  }
  mounted_ = false;
  // Lazy: the mount disappears from the namespace at once; the connection ends (and the loop
  // with it) when the last file open on it is closed.
  Status status;
  if (::umount2(options_.dir.c_str(), MNT_DETACH) < 0) {
    status = errnoStatus("umount2 " + options_.dir, errno);
  }
  if (loop_done_future_.wait_for(std::chrono::seconds(10)) != std::future_status::ready &&
      !conn_abort_path_.empty()) {
    // Something still holds a file open on the detached mount: cut the connection.
    std::ofstream(conn_abort_path_) << "1";
  }
  fuse_session_exit(session_);
  loop_.join();
  fuse_session_unmount(session_);  // a no-op once detached; releases libfuse's mount state
  fuse_session_destroy(session_);
  session_ = nullptr;
  return status;
}

FuseFs::FuseFs(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FuseFs::~FuseFs() { (void)unmount(); }

Result<std::unique_ptr<FuseFs>> FuseFs::mount(FuseOptions options, OpSink& sink) {
  auto impl = std::make_unique<Impl>(std::move(options), sink);
  HALO_RETURN_IF_ERROR(impl->start());
  return std::unique_ptr<FuseFs>(new FuseFs(std::move(impl)));
}

Status FuseFs::unmount() { return impl_->stop(); }

void FuseFs::ordered(const std::function<void()>& fn) { impl_->ordered(fn); }

int FuseFs::rootFd() const { return impl_->rootFd(); }

uint64_t FuseFs::lastDataChange(dev_t dev, ino_t ino) const {
  return impl_->lastDataChange(dev, ino);
}

}  // namespace halo::rfs
