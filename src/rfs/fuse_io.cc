// FuseFs's operations on open files, directories and extended attributes (fuse_impl.h): open,
// create, read, write, flush, release, fsync, the directory handles, statfs, xattrs,
// fallocate.

#include "rfs/fuse_impl.h"

namespace halo::rfs {

// ---- open files and data --------------------------------------------------------------------

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
      ticket = admit(lock, [&](NeedBuilder& b) {
        b.meta(ino);
        b.from(ino, 0);
      });
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
      if (err == 0) {
        submit(std::move(op));
        seq = submit(timesOf(*path, st), AckWait::Now);
      } else {
        seq = submit(std::move(op), AckWait::Now);
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
  bool start_disk = false;
  // The record's copy of the bytes is made before taking the ordering lock, which every other
  // operation waits for (a 1 MiB copy is a good part of a write's time).
  std::string data(buf, size);
  {
    std::unique_lock lock(mu_);
    ActivityLog::Ticket ticket =
        admit(lock, [&](NeedBuilder& b) { b.data(ino, static_cast<uint64_t>(off), size); });
    Admitted admitted(this, &ticket);
    if (fi->writepage == 0 && killSuidgidAsked()) {
      err = dropSetIdsOf(ino, h->fd);
    }
    n = err == 0 ? ::pwrite(h->fd, buf, size, off) : -1;
    if (err == 0 && n < 0) {
      err = errno;
    } else if (n > 0) {
      // An inode with no link left (unlinked while open) has nothing to name on the peer.
      auto path = pathOf(ino);
      if (path && replicated(*path)) {
        Op op;
        op.type = OpType::Write;
        op.path = std::move(*path);
        op.offset = static_cast<uint64_t>(off);
        data.resize(static_cast<size_t>(n));
        op.data = std::move(data);
        setResultingMtime(h->fd, &op);
        // A write-back (the page cache's) comes right before the close or fsync that waits for
        // it: its acknowledgement is asked for. Before a close, the record goes now so that the
        // round trip runs meanwhile. A file that is fsynced (a database's) is written back for
        // its next fsync, which sends a record anyway and then flushes the local disk, hiding
        // the round trip: the record goes with that one, one send and one wake-up of the peer
        // fewer.
        Node* nd = node(ino);
        const AckWait wait = h->sync                        ? AckWait::Now
                             : fi->writepage == 0           ? AckWait::None
                             : nd != nullptr && nd->fsynced ? AckWait::Later
                                                            : AckWait::Now;
        seq = submit(std::move(op), wait);
        start_disk = wait == AckWait::Later;
        if (nd != nullptr) {
          nd->last_write_seq = seq;
        }
      }
    }
  }
  if (start_disk) {
    // Its fsync follows, after a setattr of the times and the fsync request itself: the local
    // disk starts on these bytes meanwhile (not under mu_: it may wait for the device's queue).
    // The fsync reports what fails.
    ::sync_file_range(h->fd, off, n, SYNC_FILE_RANGE_WRITE);
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
  // The local disk starts on the data first: the send below (on loopback it runs the peer's
  // receive path on this CPU) then overlaps its writing. The fsync reports what fails.
  if (!dir) {
    ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  }
  uint64_t seq = 0;
  if (!options_.read_only) {
    std::lock_guard lock(mu_);
    if (Node* n = node(ino); n != nullptr && !dir) {
      n->fsynced = true;
    }
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

namespace {

// getxattr/listxattr's two forms: the size needed (size 0), or the bytes.
void replyXattr(fuse_req_t req, size_t size, const std::function<ssize_t(char*, size_t)>& read) {
  std::vector<char> buf(size);
  const ssize_t n = read(size == 0 ? nullptr : buf.data(), size);
  if (n < 0) {
    fuse_reply_err(req, errno);
  } else if (size == 0) {
    fuse_reply_xattr(req, static_cast<size_t>(n));
  } else {
    fuse_reply_buf(req, buf.data(), static_cast<size_t>(n));
  }
}

}  // namespace

void FuseFs::Impl::getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  xattr_reads_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  auto path = pathOf(ino);
  lock.unlock();
  if (!path) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  replyXattr(req, size, [&](char* out, size_t n) { return xattrGet(*path, name, out, n); });
}

void FuseFs::Impl::listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  std::unique_lock lock(mu_);
  auto path = pathOf(ino);
  lock.unlock();
  if (!path) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  replyXattr(req, size, [&](char* out, size_t n) { return xattrList(*path, out, n); });
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
      if ((mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) != 0) {
        b.from(ino, static_cast<uint64_t>(offset));  // what follows moves
      }
    });
    Admitted admitted(this, &ticket);
    // The kernel does not ask here (FUSE_HANDLE_KILLPRIV_V2 names writes, truncations and
    // chowns): the caller's uid stands for its privilege.
    if (fuse_req_ctx(req)->uid != 0) {
      err = dropSetIdsOf(ino, fileHandle(fi)->fd);
    }
    if (err == 0 && ::fallocate(fileHandle(fi)->fd, mode, offset, length) < 0) {
      err = errno;
    } else if (err == 0) {
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

}  // namespace halo::rfs
