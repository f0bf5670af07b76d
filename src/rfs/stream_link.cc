#include "rfs/stream_link.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace halo::rfs {

namespace {

constexpr size_t kHelloSize = 8;
constexpr size_t kReadChunk = 256 * 1024;

std::string errnoText(int e) { return std::strerror(e); }

std::string hello(uint16_t module_id) {
  std::string h(kStreamMagic, 4);
  h.push_back(static_cast<char>(kStreamVersion));
  h.push_back(0);
  h.push_back(static_cast<char>(module_id & 0xff));
  h.push_back(static_cast<char>(module_id >> 8));
  return h;
}

std::string u64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) {
    s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
  return s;
}

uint64_t readU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  }
  return v;
}

// Writes everything, waiting at most `timeout` for the socket to drain each time it is full.
Status writeAll(int fd, std::string_view data, Millis timeout) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      int r = poll(&p, 1, static_cast<int>(timeout.count()));
      if (r == 0) {
        return deadlineExceeded("the peer did not read for " + std::to_string(timeout.count()) +
                                " ms (sendtimeout)");
      }
      continue;
    }
    return unavailable("send: " + errnoText(errno));
  }
  return okStatus();
}

// Reads exactly `size` bytes within `timeout`.
Status readExactly(int fd, char* out, size_t size, Millis timeout) {
  size_t got = 0;
  while (got < size) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(timeout.count()));
    if (r == 0) {
      return deadlineExceeded("no answer within " + std::to_string(timeout.count()) + " ms");
    }
    if (r < 0 && errno == EINTR) {
      continue;
    }
    ssize_t n = recv(fd, out + got, size - got, 0);
    if (n == 0) {
      return unavailable("connection closed by the peer");
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      return unavailable("recv: " + errnoText(errno));
    }
    got += static_cast<size_t>(n);
  }
  return okStatus();
}

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

Result<SockAddr> makeAddr(const std::string& addr, int port) {
  SockAddr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    a.length = sizeof(sockaddr_in);
    return a;
  }
  if (inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    a.length = sizeof(sockaddr_in6);
    return a;
  }
  return invalidArgument("'" + addr + "' is not an IPv4 or IPv6 address");
}

void tuneSocket(int fd) {
  int one = 1;
  // Acknowledgements and small namespace operations must not wait for Nagle.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Status checkHello(const char* h, uint16_t module_id) {
  if (std::memcmp(h, kStreamMagic, 4) != 0) {
    return invalidArgument("not a Halo replication peer (bad magic)");
  }
  if (static_cast<uint8_t>(h[4]) != kStreamVersion) {
    return invalidArgument("replication protocol version " +
                           std::to_string(static_cast<uint8_t>(h[4])) + ", this node speaks " +
                           std::to_string(kStreamVersion));
  }
  const uint16_t id =
      static_cast<uint16_t>(static_cast<uint8_t>(h[6]) | (static_cast<uint8_t>(h[7]) << 8));
  if (id != module_id) {
    return invalidArgument("the peer replicates module id " + std::to_string(id) + ", not " +
                           std::to_string(module_id));
  }
  return okStatus();
}

}  // namespace

// ---- StreamSender ----

Result<std::unique_ptr<StreamSender>> StreamSender::connect(SenderOptions options,
                                                            TimeSource& time) {
  HALO_ASSIGN_OR_RETURN(SockAddr peer, makeAddr(options.peer_addr, options.port));
  const std::string where = options.peer_addr + ":" + std::to_string(options.port);
  int fd = socket(peer.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return unavailable("socket: " + errnoText(errno));
  }
  auto fail = [fd, &where](const std::string& why) -> Status {
    close(fd);
    return unavailable("replication link to " + where + ": " + why);
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&peer.storage), peer.length) < 0 &&
      errno != EINPROGRESS) {
    return fail(errnoText(errno));
  }
  pollfd p{fd, POLLOUT, 0};
  if (poll(&p, 1, static_cast<int>(options.connect_timeout.count())) <= 0) {
    return fail("no connection within " + std::to_string(options.connect_timeout.count()) + " ms");
  }
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    return fail(errnoText(err));
  }
  tuneSocket(fd);
  if (Status s = writeAll(fd, hello(options.module_id), options.connect_timeout); !s.ok()) {
    return fail(s.message());
  }
  char answer[kHelloSize + 8];
  if (Status s = readExactly(fd, answer, sizeof answer, options.connect_timeout); !s.ok()) {
    return fail(s.message());
  }
  if (Status s = checkHello(answer, options.module_id); !s.ok()) {
    return fail(s.message());
  }
  const uint64_t peer_last = readU64(answer + kHelloSize);
  std::unique_ptr<StreamSender> sender(new StreamSender(std::move(options), time, fd, peer_last));
  sender->send_thread_ = std::thread([s = sender.get()] { s->sendLoop(); });
  sender->ack_thread_ = std::thread([s = sender.get()] { s->ackLoop(); });
  return sender;
}

StreamSender::StreamSender(SenderOptions options, TimeSource& time, int fd, uint64_t peer_last)
    : options_(std::move(options)), time_(time), fd_(fd) {
  // The stream goes on from what the peer applied last (a new sender, the same receiver).
  next_seq_ = peer_last + 1;
  sent_ = peer_last;
  acked_ = peer_last;
}

StreamSender::~StreamSender() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  queued_cv_.notify_all();
  shutdown(fd_, SHUT_RDWR);  // wakes the acknowledgement thread
  if (send_thread_.joinable()) {
    send_thread_.join();
  }
  if (ack_thread_.joinable()) {
    ack_thread_.join();
  }
  close(fd_);
  acked_cv_.notify_all();
}

void StreamSender::setLostHandler(std::function<void(const std::string&)> handler) {
  std::lock_guard<std::mutex> lock(mutex_);
  lost_handler_ = std::move(handler);
}

std::string StreamSender::lostReason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lost_reason_;
}

uint64_t StreamSender::submit(Op op) {
  std::lock_guard<std::mutex> lock(mutex_);
  op.seq = next_seq_++;
  if (!lost_) {
    std::string record;
    encodeOp(op, &record);
    queue_.push_back(std::move(record));
    queued_cv_.notify_one();
  }
  return op.seq;
}

void StreamSender::waitAcked(uint64_t seq) {
  std::unique_lock<std::mutex> lock(mutex_);
  // Bounded: an operation the peer does not acknowledge within sendtimeout declares the link
  // lost, which ends every wait (the application never hangs on the peer).
  const auto deadline = time_.monotonicTime() + options_.send_timeout;
  while (!lost_ && !stopping_ && acked_.load() < seq) {
    if (acked_cv_.wait_until(lock, deadline) == std::cv_status::timeout && acked_.load() < seq) {
      lock.unlock();
      declareLost("operation " + std::to_string(seq) + " not acknowledged within " +
                  std::to_string(options_.send_timeout.count()) + " ms (sendtimeout)");
      return;
    }
  }
}

void StreamSender::declareLost(const std::string& why) {
  std::function<void(const std::string&)> handler;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (lost_) {
      return;
    }
    lost_ = true;
    lost_reason_ = why;
    queue_.clear();
    handler = lost_handler_;
  }
  shutdown(fd_, SHUT_RDWR);
  queued_cv_.notify_all();
  acked_cv_.notify_all();
  if (handler) {
    handler(why);
  }
}

void StreamSender::sendLoop() {
  std::string batch;
  while (true) {
    uint64_t last_seq = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      queued_cv_.wait(lock, [this] { return stopping_ || lost_ || !queue_.empty(); });
      if (stopping_ || lost_) {
        return;
      }
      // Coalesce what is queued into one write: many small records, one system call.
      batch.clear();
      while (!queue_.empty() && batch.size() < kReadChunk) {
        batch += queue_.front();
        queue_.pop_front();
        ++sent_;
      }
      last_seq = sent_;
    }
    if (Status s = writeAll(fd_, batch, options_.send_timeout); !s.ok()) {
      declareLost("sending operation " + std::to_string(last_seq) + ": " + s.message());
      return;
    }
  }
}

void StreamSender::ackLoop() {
  char buf[8 * 64];
  size_t have = 0;
  while (true) {
    ssize_t n = recv(fd_, buf + have, sizeof buf - have, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      pollfd p{fd_, POLLIN, 0};
      poll(&p, 1, 1000);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_ || lost_) {
          return;
        }
      }
      continue;
    }
    if (n <= 0) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) {
          return;
        }
      }
      declareLost(n == 0 ? "the peer closed the replication link"
                         : "receiving acknowledgements: " + errnoText(errno));
      return;
    }
    have += static_cast<size_t>(n);
    const size_t whole = have / 8 * 8;
    uint64_t last = 0;
    for (size_t i = 0; i < whole; i += 8) {
      last = readU64(buf + i);
    }
    std::memmove(buf, buf + whole, have - whole);
    have -= whole;
    if (whole > 0) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (last > acked_.load()) {
          acked_ = last;
        }
      }
      acked_cv_.notify_all();
    }
  }
}

// ---- StreamReceiver ----

Result<std::unique_ptr<StreamReceiver>> StreamReceiver::listen(ReceiverOptions options,
                                                               Applier& applier) {
  HALO_ASSIGN_OR_RETURN(SockAddr local, makeAddr(options.local_addr, options.port));
  const std::string where = options.local_addr + ":" + std::to_string(options.port);
  int fd = socket(local.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return unavailable("socket: " + errnoText(errno));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&local.storage), local.length) < 0 ||
      ::listen(fd, 4) < 0) {
    const int e = errno;
    close(fd);
    return unavailable("replication receiver cannot listen on " + where + ": " + errnoText(e));
  }
  std::unique_ptr<StreamReceiver> r(new StreamReceiver(std::move(options), applier, fd));
  r->wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (r->wake_fd_ < 0) {
    return internalError("eventfd: " + errnoText(errno));
  }
  r->thread_ = std::thread([raw = r.get()] { raw->serve(); });
  return r;
}

StreamReceiver::StreamReceiver(ReceiverOptions options, Applier& applier, int listen_fd)
    : options_(std::move(options)), applier_(applier), listen_fd_(listen_fd) {}

StreamReceiver::~StreamReceiver() {
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  close(listen_fd_);
  if (wake_fd_ >= 0) {
    close(wake_fd_);
  }
}

std::string StreamReceiver::lastError() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_error_;
}

void StreamReceiver::serve() {
  while (true) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    if (p[1].revents != 0) {
      return;
    }
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    tuneSocket(fd);
    serveConnection(fd);
    close(fd);
  }
}

void StreamReceiver::serveConnection(int fd) {
  auto end = [this](const std::string& why) {
    std::lock_guard<std::mutex> lock(mutex_);
    last_error_ = why;
  };
  char h[kHelloSize];
  if (Status s = readExactly(fd, h, sizeof h, Millis(5000)); !s.ok()) {
    end("hello: " + s.message());
    return;
  }
  if (Status s = checkHello(h, options_.module_id); !s.ok()) {
    end(s.message());
    return;
  }
  if (Status s = writeAll(fd, hello(options_.module_id) + u64(applier_.lastSeq()), Millis(5000));
      !s.ok()) {
    end("hello: " + s.message());
    return;
  }
  std::string buffer;
  std::string chunk(kReadChunk, '\0');
  while (true) {
    pollfd p[2] = {{fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    if (p[1].revents != 0) {
      return;
    }
    ssize_t n = recv(fd, chunk.data(), chunk.size(), 0);
    if (n == 0) {
      return;  // the sender went away; the next one reconnects
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      end("recv: " + errnoText(errno));
      return;
    }
    buffer.append(chunk.data(), static_cast<size_t>(n));
    size_t used = 0;
    bool applied_any = false;
    while (true) {
      auto rec = decodeOp(std::string_view(buffer).substr(used));
      if (!rec.ok()) {
        if (rec.status().code() == StatusCode::Unavailable) {
          break;  // an incomplete record: read more
        }
        end("bad record from the primary: " + rec.status().message());
        return;
      }
      if (Status s = applier_.apply(rec->first); !s.ok()) {
        // The stream can no longer be applied in order: the secondary is out of date and needs
        // a reintegration; the primary sees the link close and continues alone.
        end("cannot apply: " + s.message());
        return;
      }
      used += rec->second;
      applied_ = rec->first.seq;
      applied_any = true;
    }
    buffer.erase(0, used);
    if (applied_any) {
      if (Status s = writeAll(fd, u64(applied_.load()), Millis(30000)); !s.ok()) {
        end("acknowledging: " + s.message());
        return;
      }
    }
  }
}

}  // namespace halo::rfs
