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

#include "base/thread.h"

namespace halo::rfs {

namespace {

constexpr size_t kBatchBytes = 256 * 1024;
constexpr size_t kReadChunk = 256 * 1024;
// Readers wake this often to notice a stop even when the peer says nothing.
constexpr Millis kReadPoll{1000};
// The secondary acknowledges what the primary asks for (ack requests, Fsync records) at once,
// and otherwise at least this often while records keep coming, and after LinkOptions::idle_ack
// without any: every acknowledgement wakes the primary's reader, so one per record would double
// the cost of the stream's small records.
constexpr int kAckEveryOps = 64;
constexpr size_t kAckEveryBytes = 1 << 20;
constexpr size_t kRecordOverhead = 128;  // what an Op costs in the buffer beyond its strings
// Corked records (LinkOptions::cork): each at most this big, all together at most kCorkBytes.
constexpr size_t kCorkRecordBytes = 4096 + 512;
constexpr size_t kCorkBytes = 64 * 1024;

std::string errnoText(int e) { return std::strerror(e); }

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

// The textual form inet_ntop gives, so that two spellings of one address compare equal.
std::string canonical(const std::string& addr) {
  auto a = makeAddr(addr, 0);
  if (!a.ok()) {
    return addr;
  }
  char buf[INET6_ADDRSTRLEN] = {};
  const void* src =
      a->storage.ss_family == AF_INET
          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&a->storage)->sin_addr)
          : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&a->storage)->sin6_addr);
  inet_ntop(a->storage.ss_family, src, buf, sizeof buf);
  return buf;
}

std::string peerOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return "";
  }
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

void tuneSocket(int fd) {
  int one = 1;
  // Acknowledgements and small namespace operations must not wait for Nagle.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Result<std::unique_ptr<Channel>> openChannel(int fd, const LinkOptions& options, bool server) {
  tuneSocket(fd);
  if (options.tls) {
    return tlsChannel(fd, *options.tls, server, options.connect_timeout);
  }
  return plainChannel(fd);
}

Result<int> connectTcp(const std::string& local, const std::string& addr, int port,
                       Millis timeout) {
  HALO_ASSIGN_OR_RETURN(SockAddr peer, makeAddr(addr, port));
  int fd = socket(peer.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return unavailable("socket: " + errnoText(errno));
  }
  if (!local.empty()) {
    auto src = makeAddr(local, 0);
    if (!src.ok() || bind(fd, reinterpret_cast<sockaddr*>(&src->storage), src->length) != 0) {
      const int e = errno;
      close(fd);
      return unavailable("cannot use the source address " + local + ": " + errnoText(e));
    }
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&peer.storage), peer.length) < 0 &&
      errno != EINPROGRESS) {
    const int e = errno;
    close(fd);
    return unavailable(errnoText(e));
  }
  pollfd p{fd, POLLOUT, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
    close(fd);
    return unavailable("no connection within " + std::to_string(timeout.count()) + " ms");
  }
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    close(fd);
    return unavailable(errnoText(err));
  }
  return fd;
}

}  // namespace

// ---- listener ----

Result<std::unique_ptr<LinkListener>> LinkListener::listen(const std::string& local_addr, int port,
                                                           const std::string& peer_addr,
                                                           LinkOptions options,
                                                           Handler on_connection) {
  HALO_ASSIGN_OR_RETURN(SockAddr local, makeAddr(local_addr, port));
  const std::string where = local_addr + ":" + std::to_string(port);
  int fd = socket(local.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return unavailable("socket: " + errnoText(errno));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&local.storage), local.length) < 0 ||
      ::listen(fd, 16) < 0) {
    const int e = errno;
    close(fd);
    return unavailable("the replication process cannot listen on " + where + ": " + errnoText(e));
  }
  std::unique_ptr<LinkListener> l(
      new LinkListener(fd, canonical(peer_addr), std::move(options), std::move(on_connection)));
  l->wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (l->wake_fd_ < 0) {
    return internalError("eventfd: " + errnoText(errno));
  }
  l->thread_ = namedThread("rfs-listen", [raw = l.get()] { raw->serve(); });
  return l;
}

LinkListener::LinkListener(int fd, std::string peer_addr, LinkOptions options, Handler handler)
    : listen_fd_(fd),
      peer_addr_(std::move(peer_addr)),
      options_(std::move(options)),
      handler_(std::move(handler)) {}

LinkListener::~LinkListener() {
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

std::string LinkListener::lastRefusal() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_refusal_;
}

void LinkListener::serve() {
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
    if (fd >= 0) {
      handle(fd);
    }
  }
}

void LinkListener::handle(int fd) {
  auto refuse = [this](const std::string& why) {
    ++refused_;
    std::lock_guard<std::mutex> lock(mutex_);
    last_refusal_ = why;
  };
  const std::string from = peerOf(fd);
  if (from != peer_addr_) {
    close(fd);
    refuse("connection from " + from + " refused: only the peer " + peer_addr_ + " may connect");
    return;
  }
  auto channel = openChannel(fd, options_, true);
  if (!channel.ok()) {
    refuse("connection from " + from + ": " + channel.status().message());
    return;
  }
  char raw[kHelloSize];
  if (Status s = readExactly(**channel, raw, sizeof raw, options_.connect_timeout); !s.ok()) {
    refuse("connection from " + from + ": hello: " + s.message());
    return;
  }
  auto hello = decodeHello(std::string_view(raw, sizeof raw));
  std::optional<std::string> refusal;
  if (!hello.ok()) {
    refusal = hello.status().message();
  } else if (hello->module_id != options_.module_id) {
    refusal = "the peer replicates module id " + std::to_string(hello->module_id) + ", not " +
              std::to_string(options_.module_id);
  } else {
    AcceptedConnection c{*hello, std::move(*channel)};
    refusal = handler_(c);
    if (!refusal) {
      return;  // the handler owns the channel now
    }
    channel = std::move(c.channel);
  }
  refuse("connection from " + from + ": " + *refusal);
  if (*channel) {
    Answer a;
    a.module_id = options_.module_id;
    a.refusal = *refusal;
    (void)sendAnswer(**channel, a, options_.connect_timeout);
  }
}

Status sendAnswer(Channel& channel, const Answer& answer, Millis timeout) {
  return channel.writeAll(encodeAnswer(answer), timeout);
}

Result<ConnectedSession> connectSession(const std::string& local_addr, const std::string& peer_addr,
                                        int port, Hello hello, const LinkOptions& options) {
  const std::string where = peer_addr + ":" + std::to_string(port);
  ConnectedSession s;
  // Every connection says hello before any answer is read: the primary answers a session only
  // once all of its connections are there.
  for (uint8_t i = 0; i < hello.count; ++i) {
    auto fd = connectTcp(local_addr, peer_addr, port, options.connect_timeout);
    if (!fd.ok()) {
      return unavailable("replication link to " + where + ": " + fd.status().message());
    }
    HALO_ASSIGN_OR_RETURN(auto channel, openChannel(*fd, options, false));
    hello.index = i;
    HALO_RETURN_IF_ERROR(channel->writeAll(encodeHello(hello), options.connect_timeout)
                             .withPrefix("replication link to " + where));
    s.channels.push_back(std::move(channel));
  }
  for (auto& c : s.channels) {
    char header[kAnswerHeaderSize];
    HALO_RETURN_IF_ERROR(readExactly(*c, header, sizeof header, options.connect_timeout)
                             .withPrefix("replication link to " + where + ": answer"));
    uint32_t text_size = 0;
    HALO_ASSIGN_OR_RETURN(Answer a,
                          decodeAnswerHeader(std::string_view(header, sizeof header), &text_size));
    std::string text(text_size, '\0');
    HALO_RETURN_IF_ERROR(readExactly(*c, text.data(), text.size(), options.connect_timeout));
    if (!a.accepted) {
      return failedPrecondition("the primary refused the replication link: " + text);
    }
    s.first_seq = a.first_seq;
  }
  return s;
}

// ---- StreamSender ----

std::unique_ptr<StreamSender> StreamSender::start(std::vector<std::unique_ptr<Channel>> channels,
                                                  uint64_t first_seq, LinkOptions options,
                                                  TimeSource& time, Events events,
                                                  std::string greeting) {
  std::unique_ptr<StreamSender> s(new StreamSender(std::move(channels), first_seq,
                                                   std::move(options), time, std::move(events),
                                                   std::move(greeting)));
  for (size_t i = 0; i < s->channels_.size(); ++i) {
    s->threads_.emplace_back(namedThread("rfs-send", [raw = s.get(), i] { raw->sendLoop(i); }));
  }
  s->threads_.emplace_back(namedThread("rfs-acks", [raw = s.get()] { raw->readLoop(); }));
  return s;
}

StreamSender::StreamSender(std::vector<std::unique_ptr<Channel>> channels, uint64_t first_seq,
                           LinkOptions options, TimeSource& time, Events events,
                           std::string greeting)
    : channels_(std::move(channels)),
      options_(std::move(options)),
      time_(time),
      events_(std::move(events)),
      greeting_(std::move(greeting)),
      next_seq_(first_seq),
      greeted_(channels_.size(), greeting_.empty()),
      writing_(channels_.size(), false),
      front_(channels_.size()) {
  acked_ = first_seq - 1;
}

StreamSender::~StreamSender() {
  close();
  for (auto& t : threads_) {
    t.join();
  }
}

void StreamSender::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
  }
  declareLost("closed");
}

std::string StreamSender::lostReason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lost_reason_;
}

void StreamSender::send(Op op, AckWait wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (lost_) {
    return;
  }
  if (op.seq != next_seq_) {
    lock.unlock();
    declareLost("internal error: record " + std::to_string(op.seq) + " sent, " +
                std::to_string(next_seq_) + " expected");
    return;
  }
  const auto deadline = time_.monotonicTime() + options_.send_timeout;
  while (!lost_ && queued_bytes_ > options_.queue_limit) {
    if (space_cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
        queued_bytes_ > options_.queue_limit) {
      lock.unlock();
      declareLost("the secondary took nothing for " +
                  std::to_string(options_.send_timeout.count()) + " ms (sendtimeout)");
      return;
    }
  }
  if (lost_) {
    return;
  }
  if (Status v = validateOp(op); !v.ok()) {
    // A record the peer would refuse (over a bound): a bug here, not the peer's.
    lock.unlock();
    declareLost("internal error: an unsendable record: " + v.message());
    return;
  }
  OutRecord record;
  encodeOpHead(op, &record.head);
  record.data = std::move(op.data);
  if (op.type == OpType::Fsync) {
    requested_ = op.seq;  // the secondary acknowledges every Fsync record as it applies it
  } else if (wait != AckWait::None) {
    requested_ = op.seq;
    encodeAckRequest(op.seq, &record.tail);
  }
  ++next_seq_;
  if (wait != AckWait::Now && corkLocked(op, &record)) {
    return;
  }
  pushLocked(std::move(record));
}

bool StreamSender::corkLocked(const Op& op, OutRecord* record) {
  // Only the kinds of operation an application makes (a reintegration's small copies are
  // Writes too): an Fsync is waited for, and the reintegration's own records (its begin,
  // listings, progress, end) and a goodbye must not lag. All of them come after RemoveXattr.
  static_assert(OpType::Fsync > OpType::RemoveXattr && OpType::SyncDir > OpType::RemoveXattr);
  if (options_.cork.count() <= 0 || op.type > OpType::RemoveXattr ||
      record->size() > kCorkRecordBytes || cork_.size() + record->size() > kCorkBytes) {
    return false;
  }
  const bool first = cork_.empty();
  cork_ += record->head;
  cork_ += record->data;
  cork_ += record->tail;
  if (first) {
    cork_due_ = time_.monotonicTime() + options_.cork;
    if (timed_senders_ == 0) {
      queued_cv_.notify_one();  // a send thread watches the time (one already does otherwise)
    }
  }
  return true;
}

std::optional<MonotonicTime> StreamSender::flushCorkIfDueLocked() {
  if (cork_.empty()) {
    return std::nullopt;
  }
  if (time_.monotonicTime() < cork_due_) {
    return cork_due_;
  }
  OutRecord corked;
  corked.head = std::move(cork_);
  cork_.clear();
  queued_bytes_ += corked.size();
  queue_.push_back(std::move(corked));
  return std::nullopt;
}

void StreamSender::OutRecord::appendPieces(std::vector<std::string_view>* pieces) const {
  size_t left = skip;  // already written: skip whole parts, then the start of the next
  for (const std::string* part : {&head, &data, &tail}) {
    if (left >= part->size()) {
      left -= part->size();
      continue;
    }
    pieces->push_back(std::string_view(*part).substr(left));
    left = 0;
  }
}

void StreamSender::pushLocked(OutRecord record) {
  if (!cork_.empty()) {
    record.head.insert(0, cork_);  // in order, in the same system call
    cork_.clear();
  }
  // Idle link: written right here, which spares a thread handoff on every synchronous
  // operation. Only on connection 0, once answered, with nothing queued or being written on it.
  if (queue_.empty() && greeted_[0] && !writing_[0] && front_[0].size() == 0) {
    direct_pieces_.clear();
    record.appendPieces(&direct_pieces_);
    const size_t n = channels_[0]->tryWritev(direct_pieces_);
    bytes_sent_ += n;
    if (n == record.size()) {
      return;
    }
    if (n > 0) {
      record.skip += n;
      front_[0] = std::move(record);  // the rest before anything else on that connection
      queued_cv_.notify_all();
      return;
    }
  }
  queued_bytes_ += record.size();
  queue_.push_back(std::move(record));
  queued_cv_.notify_one();
}

bool StreamSender::waitAcked(uint64_t seq) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (acked_.load() >= seq || lost_) {
    return acked_.load() >= seq;
  }
  // The secondary acknowledges on its own only now and then: ask for this one (once for all
  // the waiters up to `seq`).
  if (requested_ < seq && seq < next_seq_) {
    requested_ = seq;
    OutRecord request;
    encodeAckRequest(seq, &request.head);
    pushLocked(std::move(request));
  } else if (!cork_.empty()) {
    pushLocked(OutRecord());  // what is held may hold `seq` and its request (AckWait::Later)
  }
  const auto deadline = time_.monotonicTime() + options_.send_timeout;
  while (!lost_ && acked_.load() < seq) {
    if (acked_cv_.wait_until(lock, deadline) == std::cv_status::timeout && acked_.load() < seq) {
      lock.unlock();
      declareLost("record " + std::to_string(seq) + " not acknowledged within " +
                  std::to_string(options_.send_timeout.count()) + " ms (sendtimeout)");
      return false;
    }
  }
  return acked_.load() >= seq;
}

void StreamSender::declareLost(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (lost_) {
      return;
    }
    lost_ = true;
    lost_reason_ = why;
    queue_.clear();
    queued_bytes_ = 0;
    cork_.clear();
  }
  // The reader thread wakes up from its read and reports it (readLoop's end).
  for (auto& c : channels_) {
    c->shutdown();
  }
  queued_cv_.notify_all();
  space_cv_.notify_all();
  acked_cv_.notify_all();
}

void StreamSender::waitRoom() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto deadline = time_.monotonicTime() + options_.send_timeout;
  while (!lost_ && queued_bytes_ > options_.queue_limit / 2) {
    if (space_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return;  // send() decides
    }
  }
}

void StreamSender::sendLoop(size_t index) {
  if (!greeting_.empty()) {
    if (Status s = channels_[index]->writeAll(greeting_, options_.send_timeout); !s.ok()) {
      declareLost("answering the secondary: " + s.message());
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    greeted_[index] = true;
  }
  std::vector<OutRecord> batch;
  std::vector<std::string_view> pieces;
  while (true) {
    size_t bytes = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      while (true) {
        const std::optional<MonotonicTime> cork_due = flushCorkIfDueLocked();
        if (lost_ || !queue_.empty() || front_[index].size() != 0) {
          break;
        }
        if (cork_due) {
          ++timed_senders_;
          queued_cv_.wait_until(lock, *cork_due);
          --timed_senders_;
        } else {
          queued_cv_.wait(lock);
        }
      }
      if (lost_) {
        return;
      }
      // What a direct write left half written goes first on its connection; then many small
      // records in one system call, a big one alone.
      batch.clear();
      if (front_[index].size() != 0) {
        bytes += front_[index].size();
        batch.push_back(std::move(front_[index]));
        front_[index] = OutRecord();
      }
      while (!queue_.empty() && (batch.empty() || bytes + queue_.front().size() <= kBatchBytes)) {
        queued_bytes_ -= queue_.front().size();
        bytes += queue_.front().size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      writing_[index] = true;
    }
    space_cv_.notify_all();
    pieces.clear();
    for (const OutRecord& r : batch) {
      r.appendPieces(&pieces);
    }
    Status s = channels_[index]->writeAllv(pieces, options_.send_timeout);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      writing_[index] = false;
    }
    if (!s.ok()) {
      declareLost("sending to the secondary: " + s.message());
      return;
    }
    bytes_sent_ += bytes;
  }
}

void StreamSender::readLoop() {
  readFrames();
  bool tell = false;
  std::string why;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tell = !closing_;
    why = lost_reason_;
  }
  if (tell && events_.lost) {
    events_.lost(why);
  }
}

void StreamSender::readFrames() {
  std::string buffer;
  std::string chunk(64 * 1024, '\0');
  while (!lost_) {
    auto n = channels_[0]->read(chunk.data(), chunk.size(), kReadPoll);
    if (!n.ok()) {
      if (n.status().code() == StatusCode::DeadlineExceeded) {
        continue;
      }
      declareLost("the secondary's end: " + n.status().message());
      return;
    }
    buffer.append(chunk.data(), *n);
    size_t used = 0;
    while (true) {
      auto f = decodeFrame(std::string_view(buffer).substr(used));
      if (!f.ok()) {
        if (f.status().code() != StatusCode::Unavailable) {
          declareLost("bad frame from the secondary: " + f.status().message());
          return;
        }
        break;
      }
      used += f->second;
      handleFrame(f->first);
      if (lost_) {
        return;
      }
    }
    buffer.erase(0, used);
  }
}

void StreamSender::handleFrame(const Frame& f) {
  switch (f.type) {
    case FrameType::Ack: {
      auto ack = decodeAck(f.payload);
      if (!ack.ok()) {
        declareLost(ack.status().message());
        return;
      }
      ++acks_received_;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (ack->applied > acked_.load()) {
          acked_ = ack->applied;
        }
        if (ack->durable > durable_.load()) {
          durable_ = ack->durable;
        }
      }
      acked_cv_.notify_all();
      return;
    }
    case FrameType::Need: {
      auto need = decodeNeed(f.payload);
      if (!need.ok()) {
        declareLost(need.status().message());
      } else if (events_.need) {
        events_.need(std::move(*need));
      }
      return;
    }
    case FrameType::Hint: {
      auto rooted = decodeRooted(f.payload);
      if (!rooted.ok()) {
        declareLost(rooted.status().message());
      } else if (events_.hint) {
        events_.hint(rooted->first, std::string(rooted->second));
      }
      return;
    }
    case FrameType::Since: {
      auto since = decodeSince(f.payload);
      if (!since.ok()) {
        declareLost(since.status().message());
      } else if (events_.since) {
        events_.since(std::move(*since));
      }
      return;
    }
    case FrameType::HintsDone:
      if (events_.hints_done) {
        events_.hints_done(f.payload == "compare");
      }
      return;
    case FrameType::Error:
      declareLost("the secondary gave up: " + f.payload.substr(0, 1024));
      return;
    case FrameType::Manifest:
      declareLost("unexpected manifest frame in a replication session");
      return;
  }
}

// ---- StreamReceiver ----

std::unique_ptr<StreamReceiver> StreamReceiver::start(
    std::vector<std::unique_ptr<Channel>> channels, uint64_t first_seq,
    std::vector<Applier*> appliers, LinkOptions options, Events events) {
  std::unique_ptr<StreamReceiver> r(new StreamReceiver(
      std::move(channels), first_seq, std::move(appliers), std::move(options), std::move(events)));
  for (Applier* a : r->appliers_) {
    a->setNeedHandler(
        [raw = r.get()](NeedRanges n) { raw->sendFrame(FrameType::Need, encodeNeed(n)); });
  }
  for (size_t i = 0; i < r->channels_.size(); ++i) {
    r->threads_.emplace_back(namedThread("rfs-recv", [raw = r.get(), i] { raw->readLoop(i); }));
  }
  if (r->channels_.size() > 1) {
    r->threads_.emplace_back(namedThread("rfs-apply", [raw = r.get()] { raw->applyLoop(); }));
  }
  return r;
}

StreamReceiver::StreamReceiver(std::vector<std::unique_ptr<Channel>> channels, uint64_t first_seq,
                               std::vector<Applier*> appliers, LinkOptions options, Events events)
    : channels_(std::move(channels)),
      appliers_(std::move(appliers)),
      options_(std::move(options)),
      events_(std::move(events)),
      next_seq_(first_seq) {
  applied_ = first_seq - 1;
}

StreamReceiver::~StreamReceiver() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    quiet_ = true;  // the owner is going: nobody to tell
  }
  end("stopped");
  for (auto& t : threads_) {
    t.join();
  }
}

std::string StreamReceiver::endReason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return end_reason_;
}

void StreamReceiver::end(const std::string& why, bool planned) {
  bool tell = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ended_) {
      return;
    }
    ended_ = true;
    end_reason_ = why;
    tell = !quiet_;
  }
  for (auto& c : channels_) {
    c->shutdown();
  }
  ready_cv_.notify_all();
  room_cv_.notify_all();
  if (tell && events_.ended) {
    events_.ended(why, planned);
  }
}

void StreamReceiver::markDurable(uint64_t seq) {
  uint64_t d = durable_.load();
  while (seq > d && !durable_.compare_exchange_weak(d, seq)) {
  }
  sendAck();
}

bool StreamReceiver::sendAck() {
  const uint64_t applied = applied_.load();
  if (!sendFrame(FrameType::Ack, encodeAck(applied, durable_.load()))) {
    return false;
  }
  uint64_t sent = ack_sent_.load();
  while (applied > sent && !ack_sent_.compare_exchange_weak(sent, applied)) {
  }
  return true;
}

bool StreamReceiver::requestAck(uint64_t upto) {
  uint64_t wanted = ack_wanted_.load();
  while (upto > wanted && !ack_wanted_.compare_exchange_weak(wanted, upto)) {
  }
  // Already applied (the request came after its records, or on another connection): now. Else
  // the record reaching `upto` is acknowledged as it is applied (applyOne reads ack_wanted_
  // after publishing applied_, this reads applied_ after publishing ack_wanted_: one of the two
  // sees the other).
  if (applied_.load() >= upto && ack_sent_.load() < upto) {
    return sendAck();
  }
  return true;
}

bool StreamReceiver::sendFrame(FrameType type, const std::string& payload) {
  if (ended_) {
    return false;
  }
  std::string frame;
  appendFrame(type, payload, &frame);
  std::lock_guard<std::mutex> lock(write_mutex_);
  if (Status s = channels_[0]->writeAll(frame, options_.send_timeout); !s.ok()) {
    end("writing to the primary: " + s.message());
    return false;
  }
  return true;
}

void StreamReceiver::readLoop(size_t index) {
  // One connection: records arrive in order and are applied right here, without a handoff to
  // the applier thread (one less wake-up per synchronous operation). Several: put in order.
  const bool inline_apply = channels_.size() == 1;
  std::string buffer;
  size_t have = 0;  // bytes of buffer holding data
  int ops_since_ack = 0;
  size_t bytes_since_ack = 0;
  std::vector<Op> decoded;
  while (!ended_) {
    if (buffer.size() < have + kReadChunk) {
      buffer.resize(have + kReadChunk);
    }
    const bool unacked = inline_apply && applied_.load() > ack_sent_.load();
    auto n = channels_[index]->read(buffer.data() + have, kReadChunk,
                                    unacked ? options_.idle_ack : kReadPoll);
    if (!n.ok()) {
      if (n.status().code() == StatusCode::DeadlineExceeded) {
        if (unacked && !sendAck()) {
          return;
        }
        ops_since_ack = 0;
        bytes_since_ack = 0;
        continue;
      }
      end("the primary's end: " + n.status().message());
      return;
    }
    bytes_received_ += *n;
    have += *n;
    size_t used = 0;
    decoded.clear();
    while (true) {
      const std::string_view rest(buffer.data() + used, have - used);
      if (auto request = decodeAckRequest(rest)) {
        used += request->second;
        if (!requestAck(request->first)) {
          return;
        }
        continue;
      }
      auto rec = decodeOp(rest);
      if (!rec.ok()) {
        if (rec.status().code() != StatusCode::Unavailable) {
          end("bad record from the primary: " + rec.status().message());
          return;
        }
        break;
      }
      used += rec->second;
      decoded.push_back(std::move(rec->first));
    }
    std::memmove(buffer.data(), buffer.data() + used, have - used);
    have -= used;
    if (inline_apply) {
      // An acknowledgement asked for by a record of this read goes once all of them are
      // applied: one frame (and one wake-up of the primary) for them all.
      bool owe_ack = false;
      for (size_t i = 0; i < decoded.size(); ++i) {
        if (decoded[i].seq != next_seq_) {
          end("record " + std::to_string(decoded[i].seq) + " out of sequence (" +
              std::to_string(next_seq_) + " expected)");
          return;
        }
        ++next_seq_;
        if (!applyOne(decoded[i], &ops_since_ack, &bytes_since_ack, &owe_ack)) {
          return;
        }
      }
      if (owe_ack && applied_.load() > ack_sent_.load()) {
        if (!sendAck()) {
          return;
        }
        ops_since_ack = 0;
        bytes_since_ack = 0;
      }
      continue;
    }
    for (Op& op : decoded) {
      const size_t cost = op.data.size() + op.path.size() + op.path2.size() + kRecordOverhead;
      std::unique_lock<std::mutex> lock(mutex_);
      // The next record in sequence always gets in, so a full buffer never blocks the applier.
      room_cv_.wait(lock, [&] {
        return ended_ || op.seq == next_seq_ || pending_bytes_ < options_.queue_limit;
      });
      if (ended_) {
        return;
      }
      if (op.seq < next_seq_ || pending_.count(op.seq) != 0) {
        lock.unlock();
        end("record " + std::to_string(op.seq) + " received twice");
        return;
      }
      pending_bytes_ += cost;
      pending_.emplace(op.seq, std::move(op));
      ready_cv_.notify_one();
    }
  }
}

void StreamReceiver::applyLoop() {
  int ops_since_ack = 0;
  size_t bytes_since_ack = 0;
  while (true) {
    Op op;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      auto ready = [this] {
        return ended_ || (!pending_.empty() && pending_.begin()->first == next_seq_);
      };
      if (applied_.load() > ack_sent_.load() &&
          !ready_cv_.wait_for(lock, options_.idle_ack, ready)) {
        lock.unlock();
        if (!sendAck()) {
          return;
        }
        ops_since_ack = 0;
        bytes_since_ack = 0;
        continue;
      }
      ready_cv_.wait(lock, ready);
      if (ended_) {
        return;
      }
      op = std::move(pending_.begin()->second);
      pending_.erase(pending_.begin());
      pending_bytes_ -= op.data.size() + op.path.size() + op.path2.size() + kRecordOverhead;
      ++next_seq_;
    }
    room_cv_.notify_all();
    if (!applyOne(op, &ops_since_ack, &bytes_since_ack)) {
      return;
    }
  }
}

bool StreamReceiver::applyOne(const Op& op, int* ops_since_ack, size_t* bytes_since_ack,
                              bool* owe_ack) {
  if (op.root >= appliers_.size()) {
    sendFrame(FrameType::Error, "record for replicated directory " + std::to_string(op.root) +
                                    ", this node has " + std::to_string(appliers_.size()));
    end("the primary replicates other directories than this node");
    return false;
  }
  if (Status s = appliers_[op.root]->apply(op); !s.ok()) {
    sendFrame(FrameType::Error, s.message());
    end("cannot apply: " + s.message());
    return false;
  }
  applied_ = op.seq;
  if (op.type == OpType::ResyncDone) {
    for (Applier* a : appliers_) {
      a->setTolerant(false);
    }
    if (events_.resynced) {
      events_.resynced(op.offset);
    }
  } else if (op.type == OpType::ResyncBegin && events_.begin) {
    events_.begin((op.flags & kResyncFull) != 0);
  } else if (op.type == OpType::ResyncProgress && events_.progress) {
    events_.progress(op.data);
  } else if (op.type == OpType::Goodbye) {
    // The session ends on purpose: everything it brought is made durable first.
    for (Applier* a : appliers_) {
      (void)a->syncToDisk();
    }
    durable_ = op.seq;
    sendFrame(FrameType::Ack, encodeAck(op.seq, op.seq));
    end("the primary ended the session", true);
    return false;
  }
  ++*ops_since_ack;
  *bytes_since_ack += op.data.size();
  const uint64_t wanted = ack_wanted_.load();
  const bool asked = (op.seq >= wanted && wanted > ack_sent_.load()) || op.type == OpType::Fsync;
  if (asked && owe_ack != nullptr) {
    *owe_ack = true;
    return true;
  }
  if (asked || *ops_since_ack >= kAckEveryOps || *bytes_since_ack >= kAckEveryBytes) {
    if (!sendAck()) {
      return false;
    }
    *ops_since_ack = 0;
    *bytes_since_ack = 0;
  }
  return true;
}

}  // namespace halo::rfs
