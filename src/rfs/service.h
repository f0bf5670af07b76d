#pragma once
// The two roles of a module's replication process (halo-rfs, DESIGN 2 and 6):
//
// PrimaryService: mounts the FUSE interception over every replicated directory, all feeding one
// Hub; listens for the secondary on the replication lan; when it connects, starts a session and
// reintegrates it (Resyncer) while the application writes; reports what happens as events.
//
// SecondaryService: applies what the primary sends to the real directories (read-only bind
// mounts over them with mode="read_only"); connects to the primary once, sends its hints and
// follows the reintegration, then the live stream, until the link ends.
//
// Both serve manifest sessions (rfsverify) to the peer and answer status().
//
// Thread-safety: events come on the services' threads; status() and the rest from any thread.

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "rfs/activity_log.h"
#include "rfs/applier.h"
#include "rfs/fuse_fs.h"
#include "rfs/hub.h"
#include "rfs/journal.h"
#include "rfs/resync.h"
#include "rfs/stream_link.h"
#include "rfs/tree_diff.h"

namespace halo::rfs {

struct ReplicatedDir {
  std::string dir;                   // absolute
  PathFilter replicated;             // <notreplicated>; null: everything
  std::vector<std::string> tocheck;  // must exist before replicating
  bool read_only = false;            // secondary: read-only bind mount
};

// Sets the C library's allocator up for the stream's records; call once, first thing in main,
// before any thread. A write's data (up to 1 MiB) is allocated by a FUSE thread and freed by the
// sender's thread once written; by default such frees hand the pages back to the kernel, and
// the next write then page-faults its way through fresh memory (seen: more time than the copy
// itself). Freed memory up to the send queue's size now stays with the process.
void tuneAllocatorForRecords();

struct ServiceOptions {
  std::vector<ReplicatedDir> dirs;
  LinkOptions link;
  std::string local_addr;  // this node's address on the replication lan
  std::string peer_addr;
  int port = 0;
  Millis lock_timeout{100000};
  ResyncOptions resync;
  unsigned fuse_threads = 8;
  // Secondary only.
  bool sync_on_fsync = false;  // async="none"
  unsigned connections = 1;    // nbremconn
  // fullsync: the (next) reintegration sends every file whole (the secondary asks it in its
  // hello; the primary applies it to its next session).
  bool full = false;
  // Secondary: the module's data generations are unrelated, so the secondary claims no sync
  // point and every file is compared (the next reintegration only).
  bool compare = false;
  // Secondary after a split brain: what this node changed alone is copied to
  // quarantine_dir/<date>/ before anything is resynchronised (quarantine.h).
  bool quarantine = false;
  std::string quarantine_dir;
  // Secondary (halo secondforce -d): every file is compared, but only those modified since this
  // Unix time are copied (0: none).
  int64_t modified_after = 0;
  Millis connect_for{10000};  // how long it tries to reach the primary
  // The node's journal (journal.h), e.g. $VAR/modules/AM/rfs.db, and activity log
  // (activity_log.h), e.g. $VAR/modules/AM/rfs-al.db; empty: none (every reintegration is full).
  std::string journal;
  std::string activity_log;
  uint64_t zone_size = 4u << 20;  // <rfs ruzone_blocksize>
  Millis activity_grace = ActivityLog::Options().grace;
  std::function<uint64_t()> random;  // sync point ids (required with a journal)
  // This node's and its peer's names: a sync point only holds between the same two nodes (a
  // node paired with another, or a clone of the peer, compares every file).
  std::string pair;
  // A file the module runtime leaves when the directories were written without interception
  // (the primary's replication process died: ALONE, degraded): the change log missed those
  // writes, so the next reintegration compares every file.
  std::string untracked_marker;
  // Crash tests: called before each journal commit (Journal::setBeforeCommit).
  std::function<void()> journal_fault;
};

struct ServiceEvent {
  // log (with level I, E or C), connected, synced, progress, lost, fence_expired
  std::string kind;
  std::string message;
  char level = 'I';
};
using EventSink = std::function<void(const ServiceEvent&)>;

class PrimaryService {
 public:
  static Result<std::unique_ptr<PrimaryService>> start(ServiceOptions options, TimeSource& time,
                                                       EventSink events);
  ~PrimaryService();
  // Ends the session and unmounts every directory (waiting for files still open, bounded).
  Status stop();
  void unfence();
  // The secondary is known to be gone (its heartbeats): its session ends now, without fencing.
  void peerLost();
  nlohmann::json status() const;
  std::vector<int> rootFds() const;
  // rfsdiff: what a reintegration would copy if the secondary joined now (estimate.cc).
  nlohmann::json estimate() const;

 private:
  PrimaryService(ServiceOptions options, TimeSource& time, EventSink events);
  Status begin();
  void post(std::function<void()> task);
  void loop();
  std::optional<std::string> onConnection(AcceptedConnection& c);
  void startSession(std::vector<std::unique_ptr<Channel>> channels, bool whole_files);
  void sample();
  void flushJournal();
  void trimActivity();
  // syncfs of the replicated directories, then hub_->localSynced (hub.h), every
  // kLocalSyncEvery on its own thread (a sync can take seconds) and at a clean stop.
  void syncLocally();
  void syncPeriodically();

  ServiceOptions options_;
  TimeSource& time_;
  EventSink events_;
  std::unique_ptr<Hub> hub_;
  std::vector<std::unique_ptr<FuseFs>> mounts_;
  std::unique_ptr<LinkListener> listener_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<ActivityLog> activity_;
  bool activity_broken_ = false;
  MonotonicTime last_flush_;
  uint64_t written_base_ = 0;
  bool written_complete_ = true;
  std::string journal_error_;  // the last write that failed (logged once)

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mutex_
  bool stopping_ = false;                    // guarded by mutex_
  struct Gathering {
    std::vector<std::unique_ptr<Channel>> channels;
    MonotonicTime since;
    uint16_t flags = 0;
  };
  std::map<uint64_t, Gathering> gathering_;  // sessions whose connections are arriving; mutex_
  std::shared_ptr<Resyncer> resyncer_;       // the current session's; mutex_
  uint64_t generation_ = 0;                  // of the current session; mutex_
  ResyncProgress last_progress_;             // mutex_
  bool resync_done_ = false;                 // mutex_
  double rep_kib_s_ = 0;                     // mutex_
  double rei_kib_s_ = 0;                     // mutex_
  uint64_t last_sent_ = 0;
  uint64_t last_copied_ = 0;
  MonotonicTime last_sample_;
  std::vector<std::thread> manifest_threads_;  // mutex_
  std::thread thread_;
  std::vector<int> local_fds_;        // the replicated directories beneath the mounts (owned)
  std::mutex local_mutex_;            // one local sync at a time
  bool local_error_ = false;          // a failed local sync was logged; local_mutex_
  std::condition_variable local_cv_;  // with mutex_ and stopping_
  std::thread local_thread_;
};

class SecondaryService {
 public:
  static Result<std::unique_ptr<SecondaryService>> start(ServiceOptions options, TimeSource& time,
                                                         EventSink events);
  ~SecondaryService();
  nlohmann::json status() const;
  std::vector<int> rootFds() const;

 private:
  SecondaryService(ServiceOptions options, TimeSource& time, EventSink events);
  Status begin();
  void connect();
  void sendSince();
  void syncPeriodically();
  void syncNow();
  Status quarantine();

  ServiceOptions options_;
  TimeSource& time_;
  EventSink events_;
  std::vector<std::unique_ptr<Applier>> appliers_;
  std::vector<std::string> bind_mounts_;
  std::unique_ptr<Journal> journal_;
  std::atomic<uint64_t> base_{0};  // the sync point this node's data derives from (0: none)
  ChangeLog own_;               // what this node changed since then (it wrote as primary); mutex_
  std::string quarantine_dir_;  // set before the threads start
  std::unique_ptr<LinkListener> listener_;
  std::unique_ptr<StreamReceiver> receiver_;
  std::atomic<StreamReceiver*> live_receiver_{nullptr};  // receiver_, for the sync thread
  std::atomic<bool> stopping_{false};

  mutable std::mutex mutex_;
  std::string state_ = "connecting";           // connecting, reintegrating, synced, ended; mutex_
  std::string progress_;                       // mutex_
  std::string end_reason_;                     // mutex_
  std::vector<std::thread> manifest_threads_;  // mutex_
  std::condition_variable durable_cv_;
  bool sync_soon_ = false;     // mutex_
  uint64_t pending_base_ = 0;  // a sync point to write at the next sync; mutex_
  std::mutex sync_mutex_;      // one sync at a time
  uint64_t durable_ = 0;       // sync_mutex_
  std::thread thread_;
  std::thread durable_thread_;
};

// rfsverify: the peer's manifests (a manifest session), compared with walks of `local_roots`
// (descriptors of the real directories). Differences per directory index.
struct VerifyReport {
  std::vector<std::pair<uint16_t, DiffEntry>> differences;
  uint64_t entries = 0;       // compared objects
  uint64_t bytes_hashed = 0;  // locally
};
Result<VerifyReport> verifyWithPeer(const std::vector<int>& local_roots,
                                    const std::vector<ReplicatedDir>& dirs,
                                    const std::string& local_addr, const std::string& peer_addr,
                                    int port, const LinkOptions& link);

}  // namespace halo::rfs
