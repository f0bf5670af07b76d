#pragma once
// The replication link (DESIGN 6.5, framing in wire.h). The secondary connects (connectSession)
// to the primary's LinkListener; one session is `nbremconn` connections. StreamSender is the
// primary's end of a replication session: it sends the op records (each batch on whichever
// connection is free) and reads the secondary's frames; StreamReceiver is the secondary's end: it
// puts the records back in sequence order, applies them and answers with frames.
//
// Thread-safety: StreamSender::send/waitAcked and StreamReceiver::sendFrame may be called from
// any thread; events are called on the link's own threads and must not destroy the link.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "rfs/applier.h"
#include "rfs/channel.h"
#include "rfs/op.h"
#include "rfs/wire.h"

namespace halo::rfs {

struct LinkOptions {
  uint16_t module_id = 0;
  std::optional<TlsIdentity> tls;  // set: every connection is TLS 1.3 with this identity
  // A record not acknowledged, or a send not drained, within this time: the link is lost
  // (<rfs sendtimeout>).
  Millis send_timeout{30000};
  Millis connect_timeout{5000};
  // The secondary acknowledges what the primary asks for at once, and otherwise after this long
  // without a new record (or every 64 records / 1 MiB).
  Millis idle_ack{10};
  // The primary holds the application's small records that no one waits for (a chmod, a
  // write-back of a few bytes...) at most this long, to send them with the next record that is
  // waited for: one system call and one wake-up of the secondary for many records. 0: never.
  Millis cork{20};
  size_t queue_limit = 32u << 20;  // bytes of records queued before send() waits
};

// One accepted connection after its hello, before its session starts.
struct AcceptedConnection {
  Hello hello;
  std::unique_ptr<Channel> channel;
};

// Listens on the replication lan for the peer's connections (DESIGN 2: TCP 5600 + 4 (id - 1)).
// Connections from any other address are closed at once; each accepted one gets its TLS
// handshake and hello (bounded by connect_timeout), then goes to `on_connection`, which takes
// the channel (and answers on it) or returns a refusal that the listener sends.
class LinkListener {
 public:
  using Handler = std::function<std::optional<std::string>(AcceptedConnection&)>;
  static Result<std::unique_ptr<LinkListener>> listen(const std::string& local_addr, int port,
                                                      const std::string& peer_addr,
                                                      LinkOptions options, Handler on_connection);
  ~LinkListener();
  uint64_t refused() const { return refused_.load(); }
  std::string lastRefusal() const;

 private:
  LinkListener(int fd, std::string peer_addr, LinkOptions options, Handler handler);
  void serve();
  void handle(int fd);

  const int listen_fd_;
  const std::string peer_addr_;
  const LinkOptions options_;
  const Handler handler_;
  int wake_fd_ = -1;
  std::atomic<uint64_t> refused_{0};
  mutable std::mutex mutex_;
  std::string last_refusal_;  // guarded by mutex_
  std::thread thread_;
};

// Writes the answer that starts (or refuses) one connection of a session.
Status sendAnswer(Channel& channel, const Answer& answer, Millis timeout);

// The secondary's side: opens `count` connections to the primary, says `hello` on each (index
// set here), reads the answers. A refusal comes back as FailedPrecondition with its text.
struct ConnectedSession {
  std::vector<std::unique_ptr<Channel>> channels;
  uint64_t first_seq = 0;
};
// `local_addr` (may be empty) is the source address, so the primary recognises its peer.
Result<ConnectedSession> connectSession(const std::string& local_addr, const std::string& peer_addr,
                                        int port, Hello hello, const LinkOptions& options);

class StreamSender {
 public:
  struct Events {
    std::function<void(NeedRanges)> need;
    std::function<void(uint16_t root, std::string manifest)> hint;
    std::function<void(SinceInfo since)> since;
    // compare_all: the secondary sent no hints (too large a tree): compare every file.
    std::function<void(bool compare_all)> hints_done;
    // Once, on the session's reader thread (never on a caller of send or waitAcked, which may
    // hold locks the handler needs).
    std::function<void(const std::string& why)> lost;
  };
  // `greeting` is written first on every connection (the primary's answer to each hello).
  static std::unique_ptr<StreamSender> start(std::vector<std::unique_ptr<Channel>> channels,
                                             uint64_t first_seq, LinkOptions options,
                                             TimeSource& time, Events events,
                                             std::string greeting = "");
  ~StreamSender();

  // Queues one record; op.seq must follow the previous one (the first is first_seq). Waits while
  // the queue is full; that wait, too, is bounded by send_timeout. Dropped once lost. A write's
  // data is written from op.data as it is (moved in: no copy). `wait` (op.h): unless None, an ack
  // request for this record goes right behind it, in the same system call; Now: at once, not
  // held with the small records no one waits for yet (cork).
  void send(Op op, AckWait wait = AckWait::None);
  // Returns once every record up to `seq` is acknowledged (true), or the link is lost (false);
  // not acknowledged within send_timeout declares it lost.
  bool waitAcked(uint64_t seq);
  // Returns once the queue is at most half full (or the link is lost; bounded by send_timeout).
  void waitRoom();
  // Ends the session (no lost event).
  void close();

  bool lost() const { return lost_.load(); }
  std::string lostReason() const;
  uint64_t acked() const { return acked_.load(); }
  // Acknowledged as on the secondary's disk (its periodic syncfs).
  uint64_t durable() const { return durable_.load(); }
  uint64_t bytesSent() const { return bytes_sent_.load(); }
  uint64_t acksReceived() const { return acks_received_.load(); }

 private:
  StreamSender(std::vector<std::unique_ptr<Channel>> channels, uint64_t first_seq,
               LinkOptions options, TimeSource& time, Events events, std::string greeting);
  // An encoded record waiting to be written: its head, then a write's data (not copied into the
  // head), then maybe an ack request; `skip` bytes of the three were already written.
  struct OutRecord {
    std::string head;
    std::string data;
    std::string tail;
    size_t skip = 0;
    size_t size() const { return head.size() + data.size() + tail.size() - skip; }
    void appendPieces(std::vector<std::string_view>* pieces) const;
  };
  // Writes a record now if connection 0 is idle, else queues it, the corked records first
  // (mutex_ held).
  void pushLocked(OutRecord record);
  // Holds a small record no one waits for in cork_ (mutex_ held); false if it must go now.
  bool corkLocked(const Op& op, OutRecord* record);
  // The sender threads: cork_ goes to the queue once due; the time to wake up otherwise.
  std::optional<MonotonicTime> flushCorkIfDueLocked();
  void sendLoop(size_t index);
  void readLoop();
  void readFrames();
  void declareLost(const std::string& why);
  void handleFrame(const Frame& f);

  std::vector<std::unique_ptr<Channel>> channels_;
  const LinkOptions options_;
  TimeSource& time_;
  Events events_;
  const std::string greeting_;
  std::atomic<bool> lost_{false};
  std::atomic<uint64_t> acked_{0};
  std::atomic<uint64_t> durable_{0};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> acks_received_{0};

  mutable std::mutex mutex_;
  std::condition_variable queued_cv_;            // senders wait for records
  std::condition_variable space_cv_;             // send() waits for queue space
  std::condition_variable acked_cv_;             // waitAcked waits
  std::deque<OutRecord> queue_;                  // guarded by mutex_
  std::vector<std::string_view> direct_pieces_;  // pushLocked's; guarded by mutex_
  // Corked records, encoded one after the other, and when they must go; guarded by mutex_.
  std::string cork_;
  MonotonicTime cork_due_{};
  int timed_senders_ = 0;    // send threads waiting for cork_due_; guarded by mutex_
  size_t queued_bytes_ = 0;  // guarded by mutex_
  uint64_t next_seq_;        // guarded by mutex_
  uint64_t requested_ = 0;   // the highest ack request sent or corked; guarded by mutex_
  std::string lost_reason_;  // guarded by mutex_
  bool closing_ = false;     // guarded by mutex_
  // Per connection, guarded by mutex_: its answer written; a send thread writing on it; the
  // rest of a record a direct write in send() left half written.
  std::vector<bool> greeted_;
  std::vector<bool> writing_;
  std::vector<OutRecord> front_;
  std::vector<std::thread> threads_;
};

class StreamReceiver {
 public:
  struct Events {
    // The reintegration's first record (before anything it changes): full or changes only.
    std::function<void(bool full)> begin;
    // The ResyncDone record was applied (before it is acknowledged): the new sync point's id.
    std::function<void(uint64_t sync_id)> resynced;
    std::function<void(const std::string& text)> progress;
    // Once: the session is over; `planned` when the primary said Goodbye (all is here).
    std::function<void(const std::string& why, bool planned)> ended;
  };
  // `appliers[i]` applies the records of root i; they must outlive the receiver, which answers
  // their NeedRanges to the primary (it sets their need handler).
  static std::unique_ptr<StreamReceiver> start(std::vector<std::unique_ptr<Channel>> channels,
                                               uint64_t first_seq, std::vector<Applier*> appliers,
                                               LinkOptions options, Events events);
  ~StreamReceiver();

  // Sends a frame to the primary on connection 0 (hints, needs). False once the session ended.
  bool sendFrame(FrameType type, const std::string& payload);
  // Everything up to `seq` is on this node's disk (the caller synced it): the primary learns it
  // with the next acknowledgement, sent now.
  void markDurable(uint64_t seq);
  uint64_t applied() const { return applied_.load(); }
  uint64_t bytesReceived() const { return bytes_received_.load(); }
  std::string endReason() const;

 private:
  StreamReceiver(std::vector<std::unique_ptr<Channel>> channels, uint64_t first_seq,
                 std::vector<Applier*> appliers, LinkOptions options, Events events);
  void readLoop(size_t index);
  void applyLoop();
  // Applies one record and acknowledges as needed; false when the session ends. `owe_ack` given:
  // an acknowledgement asked for is owed (set) instead of sent, the caller sends it.
  bool applyOne(const Op& op, int* ops_since_ack, size_t* bytes_since_ack, bool* owe_ack = nullptr);
  // Acknowledges everything applied so far; false when the session ends.
  bool sendAck();
  // The primary asked for an acknowledgement up to `upto` (an ack request record).
  bool requestAck(uint64_t upto);
  void end(const std::string& why, bool planned = false);

  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<Applier*> appliers_;
  const LinkOptions options_;
  Events events_;
  std::atomic<uint64_t> applied_{0};
  std::atomic<uint64_t> durable_{0};
  std::atomic<uint64_t> ack_sent_{0};    // the last acknowledgement's `applied`
  std::atomic<uint64_t> ack_wanted_{0};  // the highest ack request
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<bool> ended_{false};

  std::mutex write_mutex_;  // frames on connection 0
  mutable std::mutex mutex_;
  std::condition_variable ready_cv_;  // the applier waits for the next record
  std::condition_variable room_cv_;   // readers wait for buffer room
  std::map<uint64_t, Op> pending_;    // decoded, not applied yet; guarded by mutex_
  size_t pending_bytes_ = 0;          // guarded by mutex_
  uint64_t next_seq_;                 // guarded by mutex_
  std::string end_reason_;            // guarded by mutex_
  bool quiet_ = false;                // guarded by mutex_: no more events
  std::vector<std::thread> threads_;
};

}  // namespace halo::rfs
