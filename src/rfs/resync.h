#pragma once
// Resyncer: the primary's side of a full reintegration (DESIGN 6.4) while the application keeps
// writing through the FUSE mounts.
//
// Live operations and the reintegration share the session's one ordered stream. The walk goes
// through each tree top-down; each path's state is read under the file system's ordering lock
// and described by a Sync* record submitted under that same lock, so the record sits exactly
// where that state holds in the stream: the secondary makes its copy match at that point, and
// every later live operation applies to the same state on both sides.
//
// Content: a file's block digests (XXH3-128 per block) are computed outside the lock and sent
// under it; the secondary compares them with its blocks at that place in the stream, after every
// write that came before, and answers with the ranges that differ (NeedRanges). A block written
// while it was hashed can only look different (the secondary holds the new bytes, the digest is
// of the old ones): nothing is declared equal that is not. Copies are read outside the lock and
// submitted under it only if no data change reached the inode since the read began
// (FuseFs::lastDataChange), else read again under the lock: a copy never overwrites newer data.
//
// Renames during the walk may carry a path not yet walked into a part already walked: rename and
// link destinations are noted (observe()) and walked again once the walk is over, until a round
// notes none. Hard links are recreated at the end, when every file exists on the secondary.
// Files the secondary lacks (its hints, sent at the start of the session) are sent whole
// without hashing.
//
// Fast reintegration (setPlan, resync_fast.cc): when both nodes derive from the same sync point,
// only what their change logs record is reintegrated: changed files get their metadata and
// changed ranges (the secondary answers "all" if it lacks the file), directories whose entries
// changed are listed (the secondary answers the names it lacks, then described entirely), fresh
// objects are described entirely (sent whole when only the primary made them). Live operations,
// renames during the walk, links and times are handled as in the full walk.
//
// Thread-safety: onNeed/observe from any thread; the rest from the owner.

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/time_source.h"
#include "rfs/applier.h"
#include "rfs/change_log.h"
#include "rfs/fuse_fs.h"
#include "rfs/hub.h"
#include "rfs/tree_diff.h"

namespace halo::rfs {

struct ResyncRoot {
  FuseFs* fs = nullptr;
  PathFilter replicated;  // null: everything
};

struct ResyncOptions {
  unsigned threads = 6;              // <rfs nbrei>
  uint64_t block_size = 128 * 1024;  // comparison granularity
  uint64_t bandwidth_kib_per_s = 0;  // <rfs reiallowedbw>, 0: unlimited
  int max_redo_rounds = 50;
  Millis progress_every{5000};
  bool whole_files = false;  // fullsync: every file sent whole, nothing compared
};

struct ResyncProgress {
  std::string mode;          // full, changes (fast reintegration)
  std::string phase;         // counting, walking, renamed, links, finishing, done
  uint64_t files_total = 0;  // regular files to reintegrate (from the count at the start)
  uint64_t files_done = 0;
  uint64_t bytes_total = 0;   // their bytes
  uint64_t bytes_done = 0;    // bytes of the files done
  uint64_t bytes_copied = 0;  // data actually sent
  uint64_t bytes_hashed = 0;
  uint64_t entries = 0;  // directories, symlinks and special files described
  double seconds = 0;
  double rate = 0;               // bytes_done per second
  double eta_seconds = -1;       // -1: unknown
  std::string describe() const;  // "1200/5000 files, 1.2/4.6 GiB, 310 MB/s, ETA 11 s"
  // At the end: "changes only, 12 files, 4 entries, 655360 bytes copied, 0 bytes hashed, 0.4 s"
  std::string summary() const;
};

class Resyncer {
 public:
  struct Events {
    std::function<void(const ResyncProgress&)> progress;
    // Once: the marker is acknowledged (ok), or the reintegration failed.
    std::function<void(bool ok, const std::string& detail)> done;
  };
  // `session`: the hub's id of the session to reintegrate.
  Resyncer(std::vector<ResyncRoot> roots, Hub& hub, uint64_t session, ResyncOptions options,
           TimeSource& time, Events events);
  ~Resyncer();  // stops and joins

  // What the secondary has (a manifest without digests), before start().
  void setHint(uint16_t root, const Manifest& hint);
  // The secondary sent no hints (too large a tree): every file is compared.
  void noHints() { no_hints_ = true; }
  // halo secondforce -d: a file the secondary has and the primary did not modify since `unix_s`
  // is taken as identical (before start()).
  void copyOnlyModifiedAfter(int64_t unix_s) { modified_after_ = unix_s; }
  // Before start(): reintegrate only what `plan` records; `whole` lists the fresh paths only the
  // primary made (sent whole; the others' content is compared).
  void setPlan(ChangeLog plan, ChangeLog whole);
  bool fast() const { return fast_; }
  // Once; later calls (a peer repeating itself) do nothing.
  void start();
  void onNeed(const NeedRanges& need);
  // Every operation the hub submits while the reintegration runs (renames, links).
  void observe(const Op& op);
  ResyncProgress progress() const;

 private:
  struct HintEntry {
    mode_t type = 0;
    uint64_t size = 0;
  };
  struct PendingFile {
    uint16_t root = 0;
    std::string path;
    uint64_t size = 0;
    uint64_t progress_bytes = 0;  // what it adds to bytes_done (the changed ranges, fast)
    int replies = 0;              // answers still expected
    int copies = 0;               // copy tasks still queued or running
    bool failed = false;
  };
  struct LinkLater {
    uint16_t root;
    std::string first;
    std::string second;
    dev_t dev;
    ino_t ino;
  };

  void run();
  Status walkAll();
  Status count();
  // Fast reintegration (resync_fast.cc).
  Status runPlan();
  void countPlan();
  Status planMissing();  // entries the secondary said it lacks, described entirely
  // A file changed in place: `ranges` copied, `check` compared (4 KiB digests) first.
  void syncChanged(uint16_t root, const std::string& path,
                   const std::map<uint64_t, uint64_t>& ranges,
                   const std::map<uint64_t, uint64_t>& check);
  void planItemDone(uint16_t root, const std::string& path);
  bool pendingAtOrAboveLocked(uint16_t root, const std::string& path) const;
  bool pendingBelowLocked(uint16_t root, const std::string& path) const;
  // Under mutex_: a registered record's answer may have come before its registration.
  std::vector<NeedRanges> takeEarlyLocked();
  // Under mutex_: a file whose records `seqs` await answers and whose `copies` are queued.
  // `progress_bytes` counts in bytes_done once it is done (its size, or its changed ranges).
  uint64_t registerFileLocked(uint16_t root, const std::string& path, uint64_t size,
                              uint64_t progress_bytes, const std::vector<uint64_t>& seqs,
                              const std::vector<std::pair<uint64_t, uint64_t>>& copies);
  Status walkRoot(uint16_t root, const std::string& top);
  // Describes `path` and its entries; with `only`, of the entries just that one (a redo);
  // with `list_only` (fast reintegration) just its list, answered with the names it lacks.
  Status walkDir(uint16_t root, const std::string& path, std::vector<std::string>* subdirs,
                 const std::string& only = "", bool list_only = false);
  // Under the ordering lock: a SyncLink when (dev, ino) was described under another name.
  bool linkToFirst(uint16_t root, const std::string& path, const struct stat& st);
  void syncFile(uint16_t root, const std::string& path, bool hard_linked);
  void enqueueFile(uint16_t root, const std::string& path, bool hard_linked);
  // Under mutex_: queues the copy of `ranges` (clipped to the file's size) in batches.
  void queueCopiesLocked(uint64_t file_id, PendingFile* f,
                         const std::vector<std::pair<uint64_t, uint64_t>>& ranges);
  void copyRanges(uint64_t file_id, const std::vector<std::pair<uint64_t, uint64_t>>& ranges);
  void fileStep(uint64_t file_id);  // a reply or a copy finished: maybe finish the file
  void finishFile(uint64_t file_id);
  Status linksAndTimes();
  uint64_t submit(uint16_t root, Op op);
  void submitXattrs(uint16_t root, const std::string& path, const XattrList& xattrs);
  void enqueue(std::function<void()> task);
  void worker();
  bool waitIdle();  // false when stopped
  void fail(const std::string& why);
  void throttle(uint64_t bytes);
  void maybeReport();
  bool hintedMissing(uint16_t root, const std::string& path) const;
  bool describedLocked(uint16_t root, const std::string& path, bool dir) const;

  std::vector<ResyncRoot> roots_;
  Hub& hub_;
  const uint64_t session_;
  bool started_ = false;
  bool no_hints_ = false;
  const ResyncOptions options_;
  TimeSource& time_;
  Events events_;
  MonotonicTime start_time_;
  std::atomic<bool> ended_{false};  // end_time_ is set
  MonotonicTime end_time_;
  std::atomic<bool> walk_over_{false};  // the first pass is done (redo rounds follow)
  bool fast_ = false;
  ChangeLog plan_;
  int64_t modified_after_ = 0;

  std::vector<std::unordered_map<std::string, HintEntry>> hints_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> files_done_{0};
  std::atomic<uint64_t> bytes_done_{0};
  std::atomic<uint64_t> bytes_copied_{0};
  std::atomic<uint64_t> bytes_hashed_{0};
  std::atomic<uint64_t> entries_{0};

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;                // workers wait for tasks
  std::condition_variable idle_cv_;                // the coordinator waits for quiet
  std::deque<std::function<void()>> tasks_;        // guarded by mutex_
  int running_ = 0;                                // tasks running; mutex_
  std::map<uint64_t, PendingFile> files_;          // by id; mutex_
  std::unordered_map<uint64_t, uint64_t> by_seq_;  // record awaiting its answer -> file id
  std::vector<NeedRanges> early_;            // answers that came before their file was registered
  uint64_t next_file_ = 1;                   // mutex_
  std::vector<std::set<std::string>> redo_;  // rename/link destinations; mutex_
  std::vector<std::set<std::string>> redo_active_;  // the redo round being walked; mutex_
  // What the walk has finished describing, so that a rename of it (which moves right state on
  // the secondary too) needs no second look.
  std::set<std::pair<uint16_t, std::string>> walked_dirs_;    // mutex_
  std::set<std::pair<uint16_t, std::string>> pending_files_;  // queued or in progress; mutex_
  std::vector<LinkLater> links_;                              // mutex_
  // Fast reintegration, by root: plan items (fresh and changed paths) not yet described, the
  // fresh paths sent whole, and the directories whose answers (missing names) are awaited.
  std::vector<std::set<std::string>> plan_pending_;                             // mutex_
  std::vector<std::set<std::string>> whole_;                                    // mutex_
  std::unordered_map<uint64_t, std::pair<uint16_t, std::string>> dir_answers_;  // by seq; mutex_
  std::vector<std::pair<uint16_t, std::string>> missing_;                       // mutex_
  std::map<std::pair<uint16_t, std::pair<dev_t, ino_t>>, std::string> first_names_;  // mutex_
  std::vector<std::pair<uint16_t, std::string>> dirs_;  // walked directories, for their times
  std::string failure_;                                 // mutex_
  std::string phase_ = "counting";                      // mutex_
  uint64_t files_total_ = 0;
  uint64_t bytes_total_ = 0;
  MonotonicTime last_report_;
  MonotonicTime throttle_start_;
  uint64_t throttled_bytes_ = 0;  // mutex_
  std::vector<std::thread> threads_;
};

}  // namespace halo::rfs
