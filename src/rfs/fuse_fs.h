#pragma once
// FuseFs: the primary's interception of a replicated directory (DESIGN 6.1). A FUSE file system
// (libfuse3 low-level API) is mounted over the directory at its own path; every operation is
// performed on the real directory through a descriptor opened before the mount, and every
// modifying operation that succeeded locally is handed to an OpSink in the order it was applied.
//
// Inodes are identified by their (parent, name) links, not by open descriptors: the open-file
// limit is low and fixed while replicated trees hold millions of files. Files and directories are
// opened only between open/create and release (opendir and releasedir).
//
// Thread-safety: mount() and unmount() from one owner thread; the file system runs on its own
// threads and calls the sink from them (submit under its ordering lock, waitAcked without it).

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "rfs/activity_log.h"
#include "rfs/path_filter.h"
#include "rfs/sink.h"

namespace halo::rfs {

struct FuseOptions {
  std::string dir;  // the replicated directory; the mount covers it at the same path
  // Relative path -> replicated or not (notreplicated exclusions). Null: everything is.
  PathFilter replicated;
  bool read_only = false;
  unsigned threads = 8;  // FUSE worker threads (clone_fd multithreaded loop)
  // Where every change is made crash-safe before it is applied (null: no activity log), and
  // this directory's index among the module's replicated directories (its entries' root).
  ActivityLog* activity = nullptr;
  uint16_t root = 0;
};

class FuseFs {
 public:
  // Opens options.dir (O_PATH|O_DIRECTORY) BEFORE mounting, then mounts FUSE over that same path
  // (fuse_session_new + fuse_session_mount), and starts the multithreaded loop on its own thread.
  // Every operation is performed on the real directory through the descriptor opened first.
  // `sink` must outlive the FuseFs.
  static Result<std::unique_ptr<FuseFs>> mount(FuseOptions options, OpSink& sink);
  ~FuseFs();  // unmount(), ignoring its status
  FuseFs(const FuseFs&) = delete;
  FuseFs& operator=(const FuseFs&) = delete;

  // Lazy umount2(MNT_DETACH), waits for the loop to end (aborting the FUSE connection after 10 s
  // if a file is still open on the detached mount), then fuse_session_unmount. Idempotent.
  Status unmount();

  // Runs `fn` under the file system's ordering lock, so that what it reads of the real tree and
  // submits to the sink is ordered with every operation of the file system (the reintegration
  // copies files this way while the application writes).
  void ordered(const std::function<void()>& fn);
  // The real directory: the descriptor opened before the mount (O_PATH).
  int rootFd() const;
  // Only inside ordered(): the sequence number of the last data change (write, truncate,
  // fallocate) of the real inode (dev, ino); an upper bound when it is no longer tracked.
  uint64_t lastDataChange(dev_t dev, ino_t ino) const;
  // The kernel left set-ID bits and capabilities to us (FUSE_HANDLE_KILLPRIV_V2, fuse_raw.cc):
  // it no longer asks for security.capability before each write.
  bool handlesKillPriv() const;
  bool kernelOffersKillPriv() const;  // Linux 5.11 and later
  // getxattr requests served since the mount.
  uint64_t xattrReads() const;

  class Impl;  // public so the C callbacks in fuse_fs.cc can name it

 private:
  explicit FuseFs(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo::rfs
