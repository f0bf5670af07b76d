// FuseFs (fuse_fs.h): the inode table, the activity log's needs, the libfuse glue, mounting
// and unmounting. The operations are in fuse_ops.cc and fuse_io.cc.

#include "base/thread.h"
#include "rfs/fuse_impl.h"

namespace halo::rfs {

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

// ---- libfuse glue ---------------------------------------------------------------------------

namespace {

// libfuse's own messages (a worker's read error at unmount, ...), written with one write(2):
// libfuse cancels its worker threads when the loop ends, and a thread cancelled inside stdio
// leaves stderr's lock held, so that the process later hangs in its exit flush.
void logFuseMessage(enum fuse_log_level level, const char* fmt, va_list ap) {
  if (level > FUSE_LOG_NOTICE) {
    return;
  }
  char buf[512];
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  if (n > 0) {
    const size_t len = std::min(static_cast<size_t>(n), sizeof buf - 1);
    [[maybe_unused]] const ssize_t w = ::write(STDERR_FILENO, buf, len);
  }
}

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
  fuse_set_log_func(&logFuseMessage);
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
  if (Status raw = useRawIo(); !raw.ok()) {
    fuse_session_unmount(session_);
    fuse_session_destroy(session_);
    session_ = nullptr;
    return raw;
  }
  mounted_ = true;
  std::string majmin = mountDevice(options_.dir);
  if (auto colon = majmin.find(':'); colon != std::string::npos) {
    conn_abort_path_ = "/sys/fs/fuse/connections/" + majmin.substr(colon + 1) + "/abort";
  }
  loop_done_future_ = loop_done_.get_future();
  // libfuse's worker threads are made by this one and so carry its name too.
  loop_ = namedThread("rfs-fuse", [this] {
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

bool FuseFs::handlesKillPriv() const { return impl_->handlesKillPriv(); }

bool FuseFs::kernelOffersKillPriv() const { return impl_->kernelOffersKillPriv(); }

uint64_t FuseFs::xattrReads() const { return impl_->xattrReads(); }

uint64_t FuseFs::lastDataChange(dev_t dev, ino_t ino) const {
  return impl_->lastDataChange(dev, ino);
}

}  // namespace halo::rfs
