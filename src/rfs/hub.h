#pragma once
// Hub: the primary's one ordered stream for every replicated directory of a module (the OpSink of
// each FUSE mount) and its session with the secondary, when there is one (DESIGN 6.2).
//
// Every operation gets the next sequence number, whether a session exists or not (the FUSE layer
// uses them to know what changed when). With a session, every record from its first sequence on
// goes to it, in order. The application waits for the secondary's acknowledgement (fsync, close
// of a written file, namespace operations) only once the session is synced: during a
// reintegration the secondary is not up to date anyway, and the copy traffic would only slow the
// application down.
//
// Fencing by outdating (DESIGN 6.2, DRBD's resource-level fencing): when a synced session is lost,
// the hub is fenced: every wait for an acknowledgement blocks until unfence() — the module runtime
// calls it once the peer's heartbeats show it knows it is outdated, or the heartbeats declared it
// lost — or until lock_timeout. So an application never gets success for a write that only the
// primary has while the secondary could still take over as up to date.
//
// Change tracking (DESIGN 6.3, change_log.h): whatever the secondary may lack goes into the
// change log: every operation while no session is synced (alone, or reintegrating), and, when a
// synced session ends, the records it had not acknowledged as durable (on its disk, not just in
// its page cache: the hub keeps them, without their data, until they are). A reintegration's
// ResyncDone marker carries a new sync point id; once the secondary has it on disk, that id is
// the base and the log starts empty. journalDelta() hands what changed to the journal
// (journal.h), lazily; safeSeq() says up to where every operation is in the journal or on the
// secondary's disk (the activity log keeps the rest: activity_log.h).
//
// Thread-safety: all methods may be called from any thread.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/time_source.h"
#include "rfs/change_log.h"
#include "rfs/journal.h"
#include "rfs/sink.h"
#include "rfs/stream_link.h"

namespace halo::rfs {

struct HubOptions {
  Millis lock_timeout{100000};  // <rfs locktimeout>: the longest a fenced wait lasts
  LinkOptions link;
  std::function<uint64_t()> random;  // new sync point ids (required)
};

class Hub {
 public:
  struct Events {
    // A session ended; `fenced`: it was synced, so waits block until unfence().
    std::function<void(const std::string& why, bool fenced)> lost;
    // The fence ran out (lock_timeout) without unfence().
    std::function<void()> fence_expired;
  };
  Hub(size_t roots, HubOptions options, TimeSource& time, Events events);
  ~Hub();

  // The sink of the FUSE mount of root `index` (it sets Op::root).
  OpSink& sink(uint16_t index);
  // `wait`: when the caller waits for its acknowledgement (OpSink::submitAwaited).
  uint64_t submit(Op op, AckWait wait = AckWait::None);
  void waitAcked(uint64_t seq);
  uint64_t lastSeq() const;

  // Starts a session on the secondary's connections (answering them); a previous session is
  // closed first. From now on every record goes to it. Sessions are named by an id that is
  // never reused (`id`), so a late caller of an old session can never reach a new one.
  // `changes` receives, atomically with the session's first sequence number, what the
  // secondary may lack from before it (the change log) and the sync point it counts from.
  std::shared_ptr<StreamSender> startSession(std::vector<std::unique_ptr<Channel>> channels,
                                             StreamSender::Events events, uint64_t* id,
                                             ChangeLog* changes = nullptr,
                                             uint64_t* base = nullptr);
  // Submits a record of session `id`'s reintegration: dropped (0) when it is no longer current.
  uint64_t submitTo(uint64_t id, Op op);
  // Waits, without any lock held, until session `id` has room for more records (half its
  // queue), so that a reintegration never waits for room while holding the ordering lock.
  void waitRoom(uint64_t id);
  // Ends session `id`'s reintegration: submits the ResyncDone marker and, atomically with it,
  // starts awaiting acknowledgements (every record after the marker is one the secondary must
  // have before the application hears of success). Returns the marker's sequence, 0 if the
  // session is no longer current.
  uint64_t finishResync(uint64_t id);
  // Waits for session `id` to acknowledge `seq`; false when it is no longer current or was lost.
  bool waitSessionAcked(uint64_t id, uint64_t seq);
  // Sees every submitted record (under the hub's lock: keep it short), for `owner`; clearing
  // removes it only if `owner` still holds it.
  void setObserver(uint64_t owner, std::function<void(const Op&)> observer);
  void clearObserver(uint64_t owner);
  // Session `id`'s link was lost (its lost event); fences when it was synced.
  void sessionLost(uint64_t id, const std::string& why);
  // Ends the current session without fencing (the module stops, or becomes secondary). With
  // `goodbye` (the application is stopped, nothing more will be written) the secondary is told
  // first, within `wait`, that its copy is complete.
  void closeSession(bool goodbye = false, Millis wait = Millis(2000));
  void unfence();
  // Destroys the sessions that were lost (joins their threads): call it from an owner thread,
  // never from a session's event.
  void reap();

  // Change tracking: starts from what the journal held.
  void restoreChanges(uint64_t base, ChangeLog log);
  // What the journal must write now (the rows changed since the last call).
  JournalDelta journalDelta();
  uint64_t base() const;
  // A copy of the change log (rfsdiff, status).
  ChangeLog changes() const;
  // The log cannot describe what changed: the next reintegration is full.
  void markChangesIncomplete();
  // The journal wrote a delta (its `upto`).
  void journalWritten(uint64_t upto);
  // Every operation up to this sequence number is in the journal, or on the secondary's disk
  // and on this node's (localSynced).
  uint64_t safeSeq() const;
  // This node's disk has every operation up to `seq` (it synced after they were applied).
  // Until then, an operation the secondary confirmed still needs the activity log: after a
  // power loss here, this node could come back as secondary without it, and no log would name
  // it.
  void localSynced(uint64_t seq);
  // Operations a synced secondary applied (or will) but has not confirmed on its disk yet.
  uint64_t notDurable() const;

  bool synced() const;
  bool fenced() const;
  bool hasSession() const;
  uint64_t bytesSent() const;

 private:
  class RootSink;
  static ChangeLog untracked() {
    ChangeLog log;
    log.trackTouched(false);
    return log;
  }
  // Under mutex_: an operation of the application, into the log or the unacknowledged list.
  void track(const Op& op);
  // Under mutex_: the session's durable acknowledgements settle the list and a pending sync
  // point.
  void settle(uint64_t durable);
  // Under mutex_: the session ends; what it did not acknowledge as durable goes into the log.
  void keepUnacknowledged(uint64_t durable);

  const HubOptions options_;
  TimeSource& time_;
  Events events_;
  std::vector<std::unique_ptr<RootSink>> sinks_;

  mutable std::mutex mutex_;
  std::condition_variable fence_cv_;
  uint64_t next_seq_ = 1;                    // guarded by mutex_
  std::shared_ptr<StreamSender> session_;    // guarded by mutex_
  uint64_t session_id_ = 0;                  // of session_ (ids grow); mutex_
  uint64_t session_first_ = 0;               // guarded by mutex_
  bool synced_ = false;                      // guarded by mutex_
  bool fenced_ = false;                      // guarded by mutex_
  uint64_t bytes_before_ = 0;                // sent by sessions that ended; mutex_
  std::function<void(const Op&)> observer_;  // guarded by mutex_
  uint64_t observer_owner_ = 0;              // guarded by mutex_
  ChangeLog log_;                            // what the secondary may lack; mutex_
  uint64_t base_ = 0;                        // the sync point log_ counts from; mutex_
  // A synced session's operations not yet on the secondary's disk, in two generations: up to
  // older_last_ (older_) and up to recent_last_ (recent_). mutex_
  ChangeLog older_ = untracked();
  ChangeLog recent_ = untracked();
  uint64_t older_last_ = 0;
  uint64_t recent_last_ = 0;
  uint64_t durable_ = 0;          // the session's durable acknowledgement, as last seen; mutex_
  uint64_t local_durable_ = 0;    // on this node's disk (localSynced); mutex_
  uint64_t journal_safe_ = 0;     // safe thanks to journal writes; mutex_
  ChangeLog resync_log_;          // log_ when the ResyncDone marker went out; mutex_
  uint64_t marker_seq_ = 0;       // that marker, not yet acknowledged (0: none); mutex_
  uint64_t next_base_ = 0;        // the id it carries; mutex_
  bool journal_rewrite_ = false;  // the journal must be rewritten whole; mutex_
  // Lost sessions, destroyed by the next owner call (their own thread may have reported it).
  std::vector<std::shared_ptr<StreamSender>> ended_;  // guarded by mutex_
};

}  // namespace halo::rfs
