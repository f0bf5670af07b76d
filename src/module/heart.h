#pragma once
// Heart: the mirror module's heartbeat engine (DESIGN 5.1). One UDP socket per heartbeat lan and
// one dedicated thread that sends the current message every pulse, opens what the peer sends and
// decides link liveness. It has its own thread (optionally SCHED_FIFO, memory locked) because a
// heartbeat delayed by a busy loop, a page fault or a slow script is a false failover.
//
// Thread-safety: start(), setMessage(), sendNow() and the destructor are called on the EventLoop
// thread; stats() from any thread. Every event is posted to the loop, never run on the heart
// thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "proto/heartbeat.h"
#include "proto/heartbeat_crypto.h"
#include "proto/heartbeat_receiver.h"
#include "sys/event_loop.h"

namespace halo::module {

struct HeartLink {
  std::string ident;       // resource heartbeat.<ident>
  std::string local_addr;  // IPv4 or IPv6 literal this node binds to (its address on that lan)
  std::string peer_addr;   // IPv4 or IPv6 literal of the peer on that lan; packets from any other
                           // source are dropped and counted
  int port = 0;            // same UDP port on both nodes
  Millis pulse{100};       // send interval on this link
  Millis timeout{1000};    // link down when no accepted packet for this long
};

struct HeartOptions {
  uint16_t module_id = 0;
  std::string peer_node;                // an accepted packet's node_name must equal it
  std::optional<proto::ModuleKey> key;  // nullopt: clear packets with checksum
  std::vector<HeartLink> links;         // at least one
  // Try SCHED_FIFO priority for the heart thread, and mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT).
  bool realtime = true;
};

struct HeartLinkStats {
  std::string ident;
  bool up = false;
  proto::HeartbeatStats packets;  // from the link's HeartbeatReceiver
  uint64_t wrong_source = 0;      // source address not the peer's
  uint64_t wrong_node = 0;        // authentic but node_name != peer_node
  uint64_t sent = 0;
  uint64_t send_errors = 0;
};

class Heart {
 public:
  // Every callback runs on the EventLoop thread (posted), never on the heart thread.
  struct Events {
    // An accepted packet whose content differs from the last one delivered on that link (ignoring
    // boot_id and sequence), or the first one after the link came up.
    std::function<void(const std::string& ident, const proto::Heartbeat&)> received;
    std::function<void(const std::string& ident, bool up)> link;  // a link changed state
    // Every link is down: no accepted packet on any link for its timeout. Fires once per loss;
    // also fires when no packet at all arrived within the largest link timeout since start().
    // Fires again only after some link came up and all went down again.
    std::function<void()> all_lost;
    // e.g. "real-time priority unavailable: ..."; send errors (at most one per link per 10 s).
    std::function<void(const std::string& message)> warning;
  };

  // Opens and binds one UDP socket per link (SO_REUSEADDR; IPv6 sockets with IPV6_V6ONLY), then
  // starts the heart thread. Errors name the link and address, e.g. "heartbeat lan 'default':
  // cannot bind 198.18.1.1:8888: Cannot assign requested address (is this address on this
  // server?)". `loop` and `time` must outlive the Heart.
  static Result<std::unique_ptr<Heart>> start(HeartOptions options, sys::EventLoop& loop,
                                              TimeSource& time, Events events,
                                              proto::RandomBytes random);
  // Stops and joins the thread and closes the sockets; no callback runs after destruction.
  ~Heart();
  Heart(const Heart&) = delete;
  Heart& operator=(const Heart&) = delete;

  // The content of the next packets (module_id, boot_id and sequence are stamped by the sender).
  // Nothing is sent before the first call, which wakes the thread so the first packet leaves now.
  void setMessage(const proto::Heartbeat& hb);
  // Wakes the heart thread to send the current message at once on every link.
  void sendNow();
  // A snapshot, in the order of HeartOptions::links. It is published before the events of the
  // same round are posted, so a callback reading it sees at least what its event reports.
  std::vector<HeartLinkStats> stats() const;

 private:
  struct Link;  // heart-thread state of one lan (heart.cc)

  Heart(HeartOptions options, sys::EventLoop& loop, TimeSource& time, Events events,
        uint64_t boot_id, proto::RandomBytes random);
  Status openSockets();
  void run();  // the heart thread
  void wake();
  void post(std::function<void(Heart&)> fn);  // queues an event for the next flushEvents()
  void flushEvents();
  void warn(std::string message);
  void refreshMessage();
  void sendOn(const std::vector<Link*>& due, MonotonicTime now);
  void receiveFrom(Link& link, MonotonicTime now, std::vector<uint8_t>& buffer);
  void expireLinks(MonotonicTime now);
  MonotonicTime nextDeadline() const;
  void publishStats();

  const HeartOptions options_;
  sys::EventLoop& loop_;
  TimeSource& time_;
  const Events events_;
  // Posted callbacks hold a weak_ptr to it; the destructor drops it on the loop thread after the
  // join, so a callback still queued then finds it expired and does nothing.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: sendNow, first message, stop
  std::atomic<bool> stop_{false};
  std::atomic<bool> send_now_{false};

  std::mutex message_mutex_;
  std::optional<proto::Heartbeat> message_;  // guarded by message_mutex_
  uint64_t message_version_ = 0;             // guarded by message_mutex_

  // Heart thread only (and start() before the thread exists).
  std::vector<std::unique_ptr<Link>> links_;
  std::vector<std::function<void(Heart&)>> pending_;  // events not yet posted to the loop
  proto::HeartbeatSender sender_;
  std::optional<proto::Heartbeat> current_;  // the thread's copy of message_
  uint64_t current_version_ = 0;
  MonotonicTime started_;
  Millis max_timeout_{0};
  bool ever_up_ = false;        // some link has been up since start()
  bool all_lost_armed_ = true;  // all_lost not yet reported for the current loss

  mutable std::mutex stats_mutex_;
  std::vector<HeartLinkStats> published_;  // guarded by stats_mutex_

  std::thread thread_;
};

}  // namespace halo::module
