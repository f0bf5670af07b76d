#include "sys/unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace halo::sys {

namespace {
// Requests are small JSON objects; anything longer is a broken or hostile client.
constexpr size_t kMaxRequestBytes = 1 << 20;

Result<sockaddr_un> makeAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return invalidArgument("socket path too long (" + std::to_string(path.size()) +
                           " bytes, at most " + std::to_string(sizeof(addr.sun_path) - 1) +
                           "): " + path + "; use a shorter HALO_ROOT");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}
}  // namespace

Result<std::unique_ptr<LineServer>> LineServer::listen(EventLoop& loop, const std::string& path,
                                                       RequestHandler handler) {
  HALO_ASSIGN_OR_RETURN(sockaddr_un addr, makeAddress(path));
  // A live server answers a connect; then we must not steal its socket.
  if (requestLine(path, "", Millis(200)).status().code() != StatusCode::Unavailable) {
    return alreadyExists("another process is already listening on " + path);
  }
  unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return errnoStatus("socket", errno);
  }
  const mode_t old = umask(0077);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (rc < 0 || ::listen(fd, 64) < 0) {
    int e = errno;
    close(fd);
    return errnoStatus("bind/listen " + path, e);
  }
  auto server = std::unique_ptr<LineServer>(new LineServer(loop, fd, path, std::move(handler)));
  HALO_ASSIGN_OR_RETURN(server->watch_, loop.watchReadable(fd, [s = server.get()] {
    s->onAccept();
  }));
  return server;
}

LineServer::LineServer(EventLoop& loop, int fd, std::string path, RequestHandler handler)
    : loop_(loop), fd_(fd), path_(std::move(path)), handler_(std::move(handler)) {}

LineServer::~LineServer() {
  while (!conns_.empty()) {
    drop(conns_.begin()->first);
  }
  loop_.unwatch(watch_);
  close(fd_);
  unlink(path_.c_str());
}

void LineServer::onAccept() {
  while (true) {
    int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // The pending connection keeps the socket readable: pause accepting instead of
        // spinning, and try again shortly.
        loop_.unwatch(watch_);
        loop_.addTimer(Millis(100), [this] {
          auto w = loop_.watchReadable(fd_, [this] { onAccept(); });
          watch_ = w.ok() ? *w : 0;
        });
      }
      return;
    }
    const ConnId id = next_++;
    auto w = loop_.watchReadable(c, [this, id] { onReadable(id); });
    if (!w.ok()) {
      close(c);
      continue;
    }
    conns_[id] = Conn{c, *w, {}, false};
  }
}

void LineServer::onReadable(ConnId id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) {
    return;
  }
  char buf[4096];
  ssize_t n = read(it->second.fd, buf, sizeof(buf));
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    drop(id);
    if (on_closed_) {
      on_closed_(id);
    }
    return;
  }
  if (n < 0 || it->second.request_seen) {
    return;  // bytes after the request line are ignored
  }
  it->second.buffer.append(buf, static_cast<size_t>(n));
  const auto nl = it->second.buffer.find('\n');
  if (nl == std::string::npos) {
    if (it->second.buffer.size() > kMaxRequestBytes) {
      drop(id);
    }
    return;
  }
  it->second.request_seen = true;
  std::string line = it->second.buffer.substr(0, nl);
  it->second.buffer.clear();
  handler_(id, line);
}

void LineServer::reply(ConnId id, const std::string& line) {
  auto it = conns_.find(id);
  if (it == conns_.end()) {
    return;
  }
  std::string out = line + "\n";
  size_t off = 0;
  // Replies are small and the client is blocked reading, so a short bounded loop suffices.
  for (int tries = 0; off < out.size() && tries < 1000; ++tries) {
    ssize_t n = write(it->second.fd, out.data() + off, out.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      break;
    } else {
      pollfd p{it->second.fd, POLLOUT, 0};
      poll(&p, 1, 10);
    }
  }
  drop(id);
}

void LineServer::drop(ConnId id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) {
    return;
  }
  loop_.unwatch(it->second.watch);
  close(it->second.fd);
  conns_.erase(it);
}

Result<std::string> requestLine(const std::string& path, const std::string& line,
                                std::optional<Millis> timeout) {
  HALO_ASSIGN_OR_RETURN(sockaddr_un addr, makeAddress(path));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return errnoStatus("socket", errno);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    int e = errno;
    close(fd);
    return unavailable("nothing listens on " + path + " (" + std::strerror(e) + ")");
  }
  if (line.empty()) {
    close(fd);
    return std::string();  // a probe
  }
  std::string out = line + "\n";
  if (send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
    int e = errno;
    close(fd);
    return unavailable("send to " + path + ": " + std::strerror(e));
  }
  // Deadline arithmetic uses a local steady clock: this is the client's own wait bound.
  RealTimeSource clock;
  const auto deadline = clock.monotonicTime() + timeout.value_or(Millis(0));
  std::string reply;
  char buf[4096];
  while (true) {
    int wait_ms = -1;
    if (timeout) {
      auto left = std::chrono::duration_cast<Millis>(deadline - clock.monotonicTime()).count();
      if (left <= 0) {
        close(fd);
        return deadlineExceeded("no reply from " + path + " within " +
                                std::to_string(timeout->count()) + " ms");
      }
      wait_ms = static_cast<int>(left);
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, wait_ms);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r == 0) {
      continue;  // the deadline check above reports it
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
      close(fd);
      if (reply.empty()) {
        return unavailable("connection to " + path + " closed without a reply");
      }
      return reply;
    }
    reply.append(buf, static_cast<size_t>(n));
    auto nl = reply.find('\n');
    if (nl != std::string::npos) {
      close(fd);
      return reply.substr(0, nl);
    }
  }
}

}  // namespace halo::sys
