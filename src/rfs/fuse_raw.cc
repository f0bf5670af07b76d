// FuseFs's own reading and writing of /dev/fuse (fuse_impl.h), for FUSE_HANDLE_KILLPRIV_V2.
//
// Without it, the kernel asks for the security.capability attribute before every write(2), to
// know whether the write must remove it: one more request and two more thread wake-ups on the
// path of each write, about 30 us of a 4 KiB write+fsync on the machine we measure on
// (bench/rfs). With it, the file system removes set-ID bits and capabilities itself, and the
// kernel stops asking after the first write to an inode. Capabilities go by themselves: our
// writes, truncations and chowns on the real file remove them there, as the peer's do on its
// copy. Set-ID bits do not (we write as root): the kernel says, per write or setattr, when the
// caller could not keep them, and the handlers remove them then (dropSetIds). For fallocate it
// neither removes them nor says; fuse_io.cc decides by the caller's uid.
//
// libfuse 3.14 knows neither the flag nor the request fields that carry the kernel's word, so
// both are handled here, through its custom I/O hooks: the INIT reply gets the flag if the
// kernel offered it, and each request read leaves the kernel's word for the thread that
// handles it (libfuse handles a request on the thread that read it).

#include <linux/fuse.h>  // the kernel's side of the protocol: what libfuse does not expose

#include "rfs/fuse_impl.h"

namespace halo::rfs {

namespace {

constexpr uintptr_t kNoteKillSuidgid = 1;

// The field of type T at `offset` in the request's argument, if the request is long enough.
template <typename T>
bool field(const char* arg, size_t arg_len, size_t offset, T* out) {
  if (arg_len < offset + sizeof(T)) {
    return false;
  }
  std::memcpy(out, arg + offset, sizeof(T));
  return true;
}

}  // namespace

Status FuseFs::Impl::useRawIo() {
  if (int err = ::pthread_key_create(&note_key_, nullptr); err != 0) {
    return errnoStatus("pthread_key_create", err);
  }
  note_key_made_ = true;
  static constexpr fuse_custom_io kIo = {
      .writev = [](int fd, iovec* iov, int count,
                   void* self) { return static_cast<Impl*>(self)->writeReply(fd, iov, count); },
      .read = [](int fd, void* buf, size_t len,
                 void* self) { return static_cast<Impl*>(self)->readRequest(fd, buf, len); },
      .splice_receive = nullptr,  // requests are read whole, to be looked at
      .splice_send = [](int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                        unsigned flags,
                        void*) { return ::splice(fdin, offin, fdout, offout, len, flags); },
  };
  if (int err = fuse_session_custom_io(session_, &kIo, fuse_session_fd(session_)); err != 0) {
    return errnoStatus("fuse_session_custom_io", -err);
  }
  return okStatus();
}

ssize_t FuseFs::Impl::readRequest(int fd, void* buf, size_t len) {
  const ssize_t n = ::read(fd, buf, len);
  const int read_errno = errno;  // libfuse tells ENOENT, ENODEV, EINTR... apart by it
  uintptr_t note = 0;
  if (n >= static_cast<ssize_t>(sizeof(fuse_in_header))) {
    fuse_in_header in;
    std::memcpy(&in, buf, sizeof(in));
    const char* arg = static_cast<const char*>(buf) + sizeof(in);
    const size_t arg_len = static_cast<size_t>(n) - sizeof(in);
    uint32_t flags = 0;
    switch (in.opcode) {
      case FUSE_INIT:
        if (field(arg, arg_len, offsetof(fuse_init_in, flags), &flags)) {
          killpriv_offered_ = (flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
        }
        init_unique_ = in.unique;
        break;
      case FUSE_WRITE:
        if (field(arg, arg_len, offsetof(fuse_write_in, write_flags), &flags) &&
            (flags & FUSE_WRITE_KILL_SUIDGID) != 0) {
          note |= kNoteKillSuidgid;
        }
        break;
      // No FUSE_OPEN_KILL_SUIDGID: without atomic O_TRUNC (fuse_ops.cc, init), an open's
      // truncation comes as a setattr.
      case FUSE_SETATTR:
        if (field(arg, arg_len, offsetof(fuse_setattr_in, valid), &flags) &&
            (flags & FATTR_KILL_SUIDGID) != 0) {
          note |= kNoteKillSuidgid;
        }
        break;
      default:
        break;
    }
  }
  // Every request replaces the last one's note: one never applies to the next.
  ::pthread_setspecific(note_key_, reinterpret_cast<void*>(note));
  errno = read_errno;
  return n;
}

ssize_t FuseFs::Impl::writeReply(int fd, iovec* iov, int count) {
  // The INIT reply: libfuse puts the header and the argument in two pieces.
  if (init_unique_ != 0 && count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(uint32_t)) {
    fuse_out_header out;
    std::memcpy(&out, iov[0].iov_base, sizeof(out));
    if (out.unique == init_unique_) {
      init_unique_ = 0;  // answered: no later reply is looked at
      if (out.error == 0 && killpriv_offered_) {
        char* flags_at = static_cast<char*>(iov[1].iov_base) + offsetof(fuse_init_out, flags);
        uint32_t flags;
        std::memcpy(&flags, flags_at, sizeof(flags));
        flags |= FUSE_HANDLE_KILLPRIV_V2;
        std::memcpy(flags_at, &flags, sizeof(flags));
        killpriv_v2_ = true;
      }
    }
  }
  return ::writev(fd, iov, count);
}

bool FuseFs::Impl::killSuidgidAsked() const {
  return (reinterpret_cast<uintptr_t>(::pthread_getspecific(note_key_)) & kNoteKillSuidgid) != 0;
}

int FuseFs::Impl::dropSetIds(int fd, const char* rel, mode_t* mode) {
  *mode = 0;
  struct stat st;
  const int r = fd >= 0 ? ::fstat(fd, &st) : ::fstatat(root_fd_, rel, &st, AT_SYMLINK_NOFOLLOW);
  if (r != 0) {
    return errno;
  }
  // The FUSE protocol's rule (linux/fuse.h, FUSE_HANDLE_KILLPRIV_V2): set-group-ID without
  // group execution stays. (Since Linux 6.2 the kernel's own rule also drops it for a writer
  // outside the file's group; the protocol still says this.)
  const mode_t drop = S_ISUID | ((st.st_mode & S_IXGRP) != 0 ? S_ISGID : 0);
  if (!S_ISREG(st.st_mode) || (st.st_mode & drop) == 0) {
    return 0;
  }
  const mode_t kept = st.st_mode & 07777 & ~drop;
  if ((fd >= 0 ? ::fchmod(fd, kept) : ::fchmodat(root_fd_, rel, kept, 0)) != 0) {
    return errno;  // as the kernel: the change that should have removed them fails
  }
  *mode = kept;
  return 0;
}

}  // namespace halo::rfs
