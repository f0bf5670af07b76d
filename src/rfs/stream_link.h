#pragma once
// The replication link (DESIGN 6.5): one TCP connection from the primary's replication process to
// the secondary's, carrying the operation stream (op.h records) one way and acknowledgements the
// other way. StreamSender is the primary's OpSink; StreamReceiver applies what arrives.
//
// Wire: after connecting, the sender writes a hello (8 bytes: "HRFS", version 1, 0, module id
// u16 LE) and the receiver answers with its own hello followed by the last sequence it applied
// (u64 LE). Then the sender writes op records (encodeOp) and the receiver writes acknowledgements:
// u64 LE = every operation up to this sequence is applied. The receiver acknowledges each batch it
// read, so acknowledgements cost one small packet per burst, not per write.
//
// What this layer does not do yet (issues 5 and 6): TLS, several connections, dirty tracking of
// what did not reach the peer, reintegration. When the link breaks the sender reports it lost and
// stops waiting: the module continues alone (DESIGN 6.2).
//
// Thread-safety: StreamSender's OpSink methods may be called from any thread (FUSE workers).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/status.h"
#include "base/time_source.h"
#include "rfs/applier.h"
#include "rfs/sink.h"

namespace halo::rfs {

inline constexpr char kStreamMagic[4] = {'H', 'R', 'F', 'S'};
inline constexpr uint8_t kStreamVersion = 1;

struct SenderOptions {
  std::string peer_addr;  // IPv4 or IPv6 literal
  int port = 0;
  uint16_t module_id = 0;
  // An operation not acknowledged within this time declares the link lost (rfs sendtimeout).
  Millis send_timeout{30000};
  Millis connect_timeout{5000};
};

class StreamSender : public OpSink {
 public:
  // Connects (bounded by connect_timeout), exchanges hellos and starts the sending and
  // acknowledging threads. Fails when the peer cannot be reached or answers wrongly.
  static Result<std::unique_ptr<StreamSender>> connect(SenderOptions options, TimeSource& time);
  ~StreamSender() override;

  uint64_t submit(Op op) override;
  void waitAcked(uint64_t seq) override;

  // The link broke or timed out; from then on submit() drops operations (the peer is out of
  // date) and waitAcked() returns at once. `why` says what happened.
  bool lost() const { return lost_.load(); }
  std::string lostReason() const;
  uint64_t acked() const { return acked_.load(); }
  // Called once, on a sender thread, when the link is declared lost.
  void setLostHandler(std::function<void(const std::string& why)> handler);

 private:
  StreamSender(SenderOptions options, TimeSource& time, int fd, uint64_t peer_last);
  void sendLoop();
  void ackLoop();
  void declareLost(const std::string& why);

  const SenderOptions options_;
  TimeSource& time_;
  const int fd_;
  std::atomic<bool> lost_{false};
  std::atomic<uint64_t> acked_{0};

  mutable std::mutex mutex_;
  std::condition_variable queued_cv_;  // the send thread waits for work
  std::condition_variable acked_cv_;   // waitAcked waits for acknowledgements
  std::deque<std::string> queue_;      // encoded records, guarded by mutex_
  uint64_t next_seq_ = 1;              // guarded by mutex_
  uint64_t sent_ = 0;                  // highest sequence written to the socket; mutex_
  std::string lost_reason_;            // guarded by mutex_
  bool stopping_ = false;              // guarded by mutex_
  std::function<void(const std::string&)> lost_handler_;  // guarded by mutex_
  std::thread send_thread_;
  std::thread ack_thread_;
};

struct ReceiverOptions {
  std::string local_addr;  // the address to listen on (this node's, on the replication lan)
  int port = 0;
  uint16_t module_id = 0;
};

class StreamReceiver {
 public:
  // Listens and serves one sender at a time on its own thread, applying every operation with
  // `applier` (which must outlive the receiver).
  static Result<std::unique_ptr<StreamReceiver>> listen(ReceiverOptions options, Applier& applier);
  ~StreamReceiver();
  uint64_t applied() const { return applied_.load(); }
  // The last error that ended a connection ("" if none): a bad record, a failed apply.
  std::string lastError() const;

 private:
  StreamReceiver(ReceiverOptions options, Applier& applier, int listen_fd);
  void serve();
  void serveConnection(int fd);

  const ReceiverOptions options_;
  Applier& applier_;
  const int listen_fd_;
  int wake_fd_ = -1;  // eventfd: stop
  std::atomic<uint64_t> applied_{0};
  mutable std::mutex mutex_;
  std::string last_error_;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace halo::rfs
