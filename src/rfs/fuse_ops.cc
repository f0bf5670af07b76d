// FuseFs's operations on names and attributes (fuse_impl.h): lookup, forget, getattr,
// setattr, readlink, the node makers, unlink, rename, link.

#include "rfs/fuse_impl.h"

namespace halo::rfs {

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
  // O_TRUNC then arrives as a separate setattr(size=0), which we replicate like any truncate.
  // Set-ID bits: not the first version of "the file system kills them" (it would have to guess
  // the caller's privileges); the second one, which says when, is negotiated in fuse_raw.cc.
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
  ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) {
    b.meta(ino);
    if ((to_set & FUSE_SET_ATTR_SIZE) != 0) {
      b.from(ino, static_cast<uint64_t>(std::max<off_t>(attr->st_size, 0)));
    }
  });
  // Reset before each unlock below: admitted_ is guarded by mu_.
  std::optional<Admitted> admitted(std::in_place, this, &ticket);
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
    admitted.reset();
    lock.unlock();
    fuse_reply_attr(req, &reply, kCacheTimeoutSec);
    return;
  }
  if (fd < 0 && !path) {
    admitted.reset();
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
  if (err == 0 && (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) != 0 &&
      killSuidgidAsked()) {
    mode_t kept = 0;
    err = dropSetIds(fd, rel, &kept);
    if (kept != 0) {
      op.flags |= kSetMode;
      op.mode = kept;
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
  admitted.reset();
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
        if (err == 0) {
          submit(std::move(op));
          seq = submit(timesOf(*path, st), AckWait::Now);
        } else {
          seq = submit(std::move(op), AckWait::Now);
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
    ActivityLog::Ticket ticket = admit(lock, [&](NeedBuilder& b) {
      b.entries(parent);
      if (auto p = childPath(parent, name); p && !dir && hasOtherNames(*p)) {
        b.linked(*p);  // its changes may be logged under this name only
      }
    });
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
        if (!dir && S_ISREG(st.st_mode) && st.st_nlink > 1) {
          // The change log may name this file's changes under this name only: the names it
          // keeps would not be examined.
          sink_.changesUntrackable();
        }
        Op op;
        op.type = dir ? OpType::Rmdir : OpType::Unlink;
        op.path = *path;
        seq = submit(std::move(op), AckWait::Now);
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
      auto target = childPath(newparent, newname);
      auto source = childPath(parent, name);
      if (!target || !source) {
        return;
      }
      struct stat ts;
      struct stat ss;
      const bool replacing = ::fstatat(root_fd_, target->c_str(), &ts, AT_SYMLINK_NOFOLLOW) == 0;
      const bool moving_dir = ::fstatat(root_fd_, source->c_str(), &ss, AT_SYMLINK_NOFOLLOW) == 0 &&
                              S_ISDIR(ss.st_mode);
      // A name that keeps its place but changes its object, or a directory moved (what was born
      // below it while its epoch lasts is found by birth times in the listing it leaves): a
      // crash must not hide them, they are compared entirely.
      if (replacing || moving_dir) {
        b.replaced(*target);
      }
      if (replacing && (flags & RENAME_EXCHANGE) != 0) {
        b.replaced(*source);
      }
      if (replacing && S_ISREG(ts.st_mode) && ts.st_nlink > 1) {
        b.linked(*target);  // its changes may be logged under this name only
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
        if (had_target && S_ISREG(to_st.st_mode) && to_st.st_nlink > 1 && replicated(*to, false)) {
          sink_.changesUntrackable();  // as for unlink: the names it keeps would be missed
        }
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

}  // namespace halo::rfs
