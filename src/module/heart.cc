#include "module/heart.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <set>
#include <span>
#include <utility>

#include "base/thread.h"

namespace halo::module {
namespace {

constexpr uint64_t kWakeTag = UINT64_MAX;  // epoll tag of the eventfd; links use their index
constexpr int kRealtimePriority = 10;
constexpr auto kSendWarningInterval = std::chrono::seconds(10);
// Larger than any UDP datagram, so an oversized packet reaches the receiver whole and is counted.
constexpr size_t kReceiveBufferSize = 65536;
// Packets read per link per wakeup: a flood must not starve sends and expiry checks.
constexpr int kMaxPacketsPerWake = 256;

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

// A literal, optionally with "%ifname" for an IPv6 link-local address.
Result<SockAddr> parseAddress(const std::string& text, int port) {
  std::string host = text;
  uint32_t scope = 0;
  const size_t percent = host.find('%');
  if (percent != std::string::npos) {
    scope = if_nametoindex(host.c_str() + percent + 1);
    if (scope == 0) {
      return invalidArgument("'" + text + "': no interface '" + host.substr(percent + 1) + "'");
    }
    host.resize(percent);
  }
  SockAddr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  if (percent == std::string::npos && inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof(sockaddr_in);
    return a;
  }
  a = SockAddr{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    v6->sin6_scope_id = scope;
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return invalidArgument("'" + text + "' is not an IPv4 or IPv6 literal");
}

// "198.18.1.1:8888" or "[::1]:8888", for messages.
std::string hostPort(const std::string& host, int port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Same IP address; ports and IPv6 scopes are not compared.
bool sameHost(const sockaddr_storage& from, const SockAddr& want) {
  if (from.ss_family != want.family()) {
    return false;
  }
  if (from.ss_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in&>(from).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(want.ss).sin_addr.s_addr;
  }
  return std::memcmp(&reinterpret_cast<const sockaddr_in6&>(from).sin6_addr,
                     &reinterpret_cast<const sockaddr_in6&>(want.ss).sin6_addr,
                     sizeof(in6_addr)) == 0;
}

std::string lanName(const HeartLink& link) { return "heartbeat lan '" + link.ident + "'"; }

Status validate(const HeartOptions& options) {
  if (options.links.empty()) {
    return invalidArgument("heartbeat: no heartbeat lan configured");
  }
  if (options.peer_node.empty()) {
    return invalidArgument("heartbeat: the peer node name is empty");
  }
  std::set<std::string> idents;
  for (const HeartLink& link : options.links) {
    if (link.ident.empty()) {
      return invalidArgument("heartbeat lan with local address '" + link.local_addr +
                             "': empty ident");
    }
    if (!idents.insert(link.ident).second) {
      return invalidArgument(lanName(link) + ": configured twice");
    }
    if (link.port < 1 || link.port > 65535) {
      return invalidArgument(lanName(link) + ": port " + std::to_string(link.port) +
                             " is outside 1..65535");
    }
    // A timeout within one pulse would take the link down between two healthy packets.
    if (link.pulse.count() <= 0 || link.timeout <= link.pulse) {
      return invalidArgument(lanName(link) + ": needs 0 < pulse (" +
                             std::to_string(link.pulse.count()) + " ms) < timeout (" +
                             std::to_string(link.timeout.count()) + " ms)");
    }
  }
  return okStatus();
}

Status bindError(const HeartLink& link, int err) {
  std::string message = lanName(link) + ": cannot bind " + hostPort(link.local_addr, link.port) +
                        ": " + std::strerror(err);
  StatusCode code = StatusCode::Internal;
  if (err == EADDRNOTAVAIL) {
    message += " (is this address on this server?)";
    code = StatusCode::Unavailable;
  } else if (err == EADDRINUSE) {
    message += " (does another process use this port?)";
    code = StatusCode::Unavailable;
  } else if (err == EACCES || err == EPERM) {
    code = StatusCode::PermissionDenied;
  }
  return {code, message};
}

}  // namespace

struct Heart::Link {
  Link(const HeartLink& c, uint16_t module_id, const std::optional<proto::ModuleKey>& key,
       const std::string& peer_node)
      : config(c), receiver(module_id, key, peer_node) {}
  ~Link() {
    if (fd >= 0) {
      close(fd);
    }
  }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  const HeartLink& config;  // in Heart::options_
  SockAddr peer;
  int fd = -1;
  proto::HeartbeatReceiver receiver;
  bool up = false;
  MonotonicTime last_accepted{};
  MonotonicTime next_send{};
  // Last content delivered since the link came up, boot id and sequence zeroed.
  std::optional<proto::Heartbeat> delivered;
  std::optional<MonotonicTime> last_send_warning;
  uint64_t wrong_source = 0;
  uint64_t sent = 0;
  uint64_t send_errors = 0;
};

Result<std::unique_ptr<Heart>> Heart::start(HeartOptions options, sys::EventLoop& loop,
                                            TimeSource& time, Events events,
                                            proto::RandomBytes random) {
  HALO_RETURN_IF_ERROR(validate(options));
  if (!random) {
    return invalidArgument("heartbeat: no random source");
  }
  std::array<uint8_t, sizeof(uint64_t)> boot_bytes{};
  HALO_RETURN_IF_ERROR(random(boot_bytes).withPrefix("heartbeat: boot id"));
  uint64_t boot_id = 0;
  std::memcpy(&boot_id, boot_bytes.data(), sizeof(boot_id));

  std::unique_ptr<Heart> heart(
      new Heart(std::move(options), loop, time, std::move(events), boot_id, std::move(random)));
  HALO_RETURN_IF_ERROR(heart->openSockets());  // the destructor closes what was opened
  if (heart->options_.realtime && mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) {
    heart->warn(std::string("memory lock unavailable: mlockall: ") + std::strerror(errno) +
                "; heartbeats may stall on page faults");
  }
  heart->started_ = time.monotonicTime();
  for (auto& link : heart->links_) {
    link->next_send = heart->started_;
  }
  heart->thread_ = namedThread("halo-heart", [h = heart.get()] { h->run(); });
  return heart;
}

Heart::Heart(HeartOptions options, sys::EventLoop& loop, TimeSource& time, Events events,
             uint64_t boot_id, proto::RandomBytes random)
    : options_(std::move(options)),
      loop_(loop),
      time_(time),
      events_(std::move(events)),
      sender_(options_.module_id, options_.key, boot_id, std::move(random)) {
  for (const HeartLink& config : options_.links) {
    links_.push_back(std::make_unique<Link>(config, options_.module_id, options_.key,
                                            options_.peer_node));
    max_timeout_ = std::max(max_timeout_, config.timeout);
    HeartLinkStats s;
    s.ident = config.ident;
    published_.push_back(std::move(s));
  }
}

Heart::~Heart() {
  stop_ = true;
  if (thread_.joinable()) {
    wake();
    thread_.join();
  }
  // Only now, with the thread gone: callbacks still queued on the loop find the token expired.
  alive_.reset();
  links_.clear();
  if (epoll_fd_ >= 0) {
    close(epoll_fd_);
  }
  if (wake_fd_ >= 0) {
    close(wake_fd_);
  }
}

Status Heart::openSockets() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    return errnoStatus("heartbeat: epoll_create1", errno);
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    return errnoStatus("heartbeat: eventfd", errno);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    return errnoStatus("heartbeat: epoll_ctl eventfd", errno);
  }
  for (size_t i = 0; i < links_.size(); ++i) {
    Link& link = *links_[i];
    const HeartLink& c = link.config;
    auto local = parseAddress(c.local_addr, c.port);
    if (!local.ok()) {
      return local.status().withPrefix(lanName(c) + ": local address");
    }
    auto peer = parseAddress(c.peer_addr, c.port);
    if (!peer.ok()) {
      return peer.status().withPrefix(lanName(c) + ": peer address");
    }
    if (local->family() != peer->family()) {
      return invalidArgument(lanName(c) + ": local address " + c.local_addr + " and peer address " +
                             c.peer_addr + " are of different families");
    }
    link.peer = *peer;
    link.fd = socket(local->family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (link.fd < 0) {
      return errnoStatus(lanName(c) + ": socket", errno);
    }
    const int one = 1;
    if (setsockopt(link.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      return errnoStatus(lanName(c) + ": SO_REUSEADDR", errno);
    }
    // Without it an IPv6 socket would also take IPv4 packets for the port.
    if (local->family() == AF_INET6 &&
        setsockopt(link.fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
      return errnoStatus(lanName(c) + ": IPV6_V6ONLY", errno);
    }
    if (bind(link.fd, local->get(), local->len) != 0) {
      return bindError(c, errno);
    }
    ev.data.u64 = i;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, link.fd, &ev) != 0) {
      return errnoStatus(lanName(c) + ": epoll_ctl", errno);
    }
  }
  return okStatus();
}

void Heart::setMessage(const proto::Heartbeat& hb) {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(message_mutex_);
    first = !message_.has_value();
    message_ = hb;
    ++message_version_;
  }
  if (first) {
    wake();  // the thread sleeps without send deadlines until it has something to send
  }
}

void Heart::sendNow() {
  send_now_ = true;
  wake();
}

std::vector<HeartLinkStats> Heart::stats() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  return published_;
}

void Heart::wake() {
  const uint64_t one = 1;
  // EAGAIN only when the counter is saturated, and then a wakeup is pending anyway.
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void Heart::post(std::function<void(Heart&)> fn) { pending_.push_back(std::move(fn)); }

void Heart::flushEvents() {
  if (pending_.empty()) {
    return;
  }
  loop_.post([this, token = std::weak_ptr<bool>(alive_), batch = std::move(pending_)] {
    for (const auto& fn : batch) {
      if (token.expired()) {
        return;  // gone before the batch, or destroyed by one of its callbacks
      }
      fn(*this);
    }
  });
  pending_.clear();
}

void Heart::warn(std::string message) {
  post([message = std::move(message)](Heart& h) {
    if (h.events_.warning) {
      h.events_.warning(message);
    }
  });
}

void Heart::run() {
  if (options_.realtime) {
    sched_param param{};
    param.sched_priority = kRealtimePriority;
    const int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
    if (rc != 0) {
      warn("real-time priority unavailable: SCHED_FIFO " + std::to_string(kRealtimePriority) +
           ": " + std::strerror(rc));
    }
  }
  std::vector<uint8_t> buffer(kReceiveBufferSize);
  std::vector<Link*> due;
  std::array<epoll_event, 16> events{};
  while (!stop_) {
    MonotonicTime now = time_.monotonicTime();
    // Flag before message: sendNow() follows setMessage(), so the message it asks for is seen.
    const bool send_all = send_now_.exchange(false);
    refreshMessage();
    if (current_) {
      due.clear();
      for (auto& link : links_) {
        if (send_all || now >= link->next_send) {
          due.push_back(link.get());
        }
      }
      if (!due.empty()) {
        sendOn(due, now);
      }
    }
    expireLinks(now);
    // Stats first, so a callback that reads stats() sees what its event reports.
    publishStats();
    flushEvents();

    int timeout_ms = -1;
    const MonotonicTime deadline = nextDeadline();
    if (deadline != MonotonicTime::max()) {
      // Rounded up: waking before the deadline would only spin once more.
      const auto wait = std::chrono::ceil<Millis>(deadline - now).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(wait, 0, INT_MAX));
    }
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      // Cannot happen with our own valid fds; stopping makes the peer see us gone, which is
      // what a dead heart must look like, rather than spinning.
      warn(std::string("heart thread stopped: epoll_wait: ") + std::strerror(errno));
      flushEvents();
      return;
    }
    now = time_.monotonicTime();
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[static_cast<size_t>(i)].data.u64;
      if (tag == kWakeTag) {
        uint64_t value = 0;
        [[maybe_unused]] ssize_t r = read(wake_fd_, &value, sizeof(value));
      } else if (tag < links_.size()) {
        receiveFrom(*links_[tag], now, buffer);
      }
    }
  }
}

void Heart::refreshMessage() {
  std::lock_guard<std::mutex> lock(message_mutex_);
  if (message_version_ != current_version_) {
    current_ = message_;
    current_version_ = message_version_;
  }
}

void Heart::sendOn(const std::vector<Link*>& due, MonotonicTime now) {
  // One sealed packet for every due link: each link's receiver has its own replay window.
  auto packet = sender_.next(*current_);
  for (Link* link : due) {
    std::string error;
    if (!packet.ok()) {
      error = "cannot build heartbeat: " + packet.status().message();
    } else if (sendto(link->fd, packet->data(), packet->size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                      link->peer.get(), link->peer.len) < 0) {
      error = "cannot send to " + hostPort(link->config.peer_addr, link->config.port) + ": " +
              std::strerror(errno);
    }
    if (error.empty()) {
      ++link->sent;
    } else {
      ++link->send_errors;
      if (!link->last_send_warning || now - *link->last_send_warning >= kSendWarningInterval) {
        link->last_send_warning = now;
        warn(lanName(link->config) + ": " + error + " (" + std::to_string(link->send_errors) +
             " send errors so far)");
      }
    }
    // Keep the rhythm, but after a stall restart it rather than sending a burst.
    link->next_send += link->config.pulse;
    if (link->next_send <= now) {
      link->next_send = now + link->config.pulse;
    }
  }
}

void Heart::receiveFrom(Link& link, MonotonicTime now, std::vector<uint8_t>& buffer) {
  for (int i = 0; i < kMaxPacketsPerWake; ++i) {
    sockaddr_storage from{};
    socklen_t from_len = sizeof(from);
    const ssize_t n = recvfrom(link.fd, buffer.data(), buffer.size(), MSG_DONTWAIT,
                               reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;  // EAGAIN: drained. Other errors (e.g. a queued ICMP error) carry no packet.
    }
    if (!sameHost(from, link.peer)) {
      ++link.wrong_source;  // not even opened: only the peer may move the replay window
      continue;
    }
    auto hb =
        link.receiver.receive(std::span<const uint8_t>(buffer.data(), static_cast<size_t>(n)));
    if (!hb.ok()) {
      continue;  // counted by the receiver (a wrong node name too, before its replay window)
    }
    link.last_accepted = now;
    if (!link.up) {
      link.up = true;
      link.delivered.reset();
      ever_up_ = true;
      all_lost_armed_ = true;
      post([ident = link.config.ident](Heart& h) {
        if (h.events_.link) {
          h.events_.link(ident, true);
        }
      });
    }
    // Compare content only: boot id and sequence change with every packet.
    const uint64_t boot_id = hb->boot_id;
    const uint64_t sequence = hb->sequence;
    hb->boot_id = 0;
    hb->sequence = 0;
    if (link.delivered && *link.delivered == *hb) {
      continue;
    }
    link.delivered = *hb;
    hb->boot_id = boot_id;
    hb->sequence = sequence;
    post([ident = link.config.ident, message = std::move(*hb)](Heart& h) {
      if (h.events_.received) {
        h.events_.received(ident, message);
      }
    });
  }
}

void Heart::expireLinks(MonotonicTime now) {
  bool any_up = false;
  for (auto& link : links_) {
    if (link->up && now >= link->last_accepted + link->config.timeout) {
      link->up = false;
      post([ident = link->config.ident](Heart& h) {
        if (h.events_.link) {
          h.events_.link(ident, false);
        }
      });
    }
    any_up = any_up || link->up;
  }
  // Before any link was ever up, the loss is declared after the largest timeout from start.
  if (all_lost_armed_ && !any_up && (ever_up_ || now >= started_ + max_timeout_)) {
    all_lost_armed_ = false;
    post([](Heart& h) {
      if (h.events_.all_lost) {
        h.events_.all_lost();
      }
    });
  }
}

MonotonicTime Heart::nextDeadline() const {
  MonotonicTime deadline = MonotonicTime::max();
  for (const auto& link : links_) {
    if (current_) {
      deadline = std::min(deadline, link->next_send);
    }
    if (link->up) {
      deadline = std::min(deadline, link->last_accepted + link->config.timeout);
    }
  }
  if (all_lost_armed_ && !ever_up_) {
    deadline = std::min(deadline, started_ + max_timeout_);
  }
  return deadline;
}

void Heart::publishStats() {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  for (size_t i = 0; i < links_.size(); ++i) {
    const Link& link = *links_[i];
    HeartLinkStats& s = published_[i];
    s.up = link.up;
    s.packets = link.receiver.stats();
    s.wrong_source = link.wrong_source;
    s.wrong_node = s.packets.wrong_node;
    s.sent = link.sent;
    s.send_errors = link.send_errors;
  }
}

}  // namespace halo::module
