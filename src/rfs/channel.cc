#include "rfs/channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <iterator>
#include <cstring>

namespace halo::rfs {

namespace {

class PlainChannel : public Channel {
 public:
  // The socket blocks, so that a read is one recv that sleeps until data comes (not recv, poll,
  // recv: the stream's reader wakes for nearly every record); every send says MSG_DONTWAIT.
  explicit PlainChannel(int fd) : fd_(fd) {
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  }
  ~PlainChannel() override { ::close(fd_); }

  Status writeAll(std::string_view data, Millis timeout) override {
    while (!data.empty()) {
      if (closed_.load()) {
        return unavailable("the connection was shut down");
      }
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
        if (r == 0) {
          return deadlineExceeded("the peer read nothing for " + std::to_string(timeout.count()) +
                                  " ms");
        }
        continue;
      }
      return unavailable(std::string("send: ") + std::strerror(errno));
    }
    return okStatus();
  }

  Status writeAllv(const std::vector<std::string_view>& pieces, Millis timeout) override {
    std::vector<iovec> iov;
    for (auto p : pieces) {
      if (!p.empty()) {
        iov.push_back({const_cast<char*>(p.data()), p.size()});
      }
    }
    size_t first = 0;
    while (first < iov.size()) {
      if (closed_.load()) {
        return unavailable("the connection was shut down");
      }
      msghdr msg{};
      msg.msg_iov = iov.data() + first;
      msg.msg_iovlen = std::min<size_t>(iov.size() - first, IOV_MAX);
      ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) == 0) {
          return deadlineExceeded("the peer read nothing for " + std::to_string(timeout.count()) +
                                  " ms");
        }
        continue;
      }
      if (n < 0) {
        return unavailable(std::string("send: ") + std::strerror(errno));
      }
      // Skip what was written: whole pieces, then part of the next one.
      size_t left = static_cast<size_t>(n);
      while (first < iov.size() && left >= iov[first].iov_len) {
        left -= iov[first].iov_len;
        ++first;
      }
      if (first < iov.size() && left > 0) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    return okStatus();
  }

  size_t tryWrite(std::string_view data) override {
    if (closed_.load()) {
      return 0;
    }
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }

  size_t tryWritev(const std::vector<std::string_view>& pieces) override {
    if (closed_.load() || pieces.empty()) {
      return 0;
    }
    iovec iov[8];
    size_t count = 0;
    for (auto p : pieces) {
      if (count == std::size(iov)) {
        break;  // the caller queues the rest
      }
      iov[count++] = {const_cast<char*>(p.data()), p.size()};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }

  Result<size_t> read(char* out, size_t size, Millis timeout) override {
    const bool wait = timeout.count() > 0;
    if (wait && timeout != receive_timeout_) {
      timeval tv{};
      tv.tv_sec = timeout.count() / 1000;
      tv.tv_usec = (timeout.count() % 1000) * 1000;
      if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        return unavailable(std::string("setsockopt SO_RCVTIMEO: ") + std::strerror(errno));
      }
      receive_timeout_ = timeout;
    }
    while (true) {
      if (closed_.load()) {
        return unavailable("the connection was shut down");
      }
      // shutdown() from another thread wakes a recv sleeping here (it then returns 0).
      ssize_t n = ::recv(fd_, out, size, wait ? 0 : MSG_DONTWAIT);
      if (n > 0) {
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        if (closed_.load()) {
          return unavailable("the connection was shut down");
        }
        return unavailable("connection closed by the peer");
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return unavailable(std::string("recv: ") + std::strerror(errno));
      }
      return deadlineExceeded("nothing received for " + std::to_string(timeout.count()) + " ms");
    }
  }

  void shutdown() override {
    closed_ = true;
    ::shutdown(fd_, SHUT_RDWR);  // wakes a poll in the other thread
  }

  const char* kind() const override { return "tcp"; }

 private:
  const int fd_;
  std::atomic<bool> closed_{false};
  Millis receive_timeout_{0};  // SO_RCVTIMEO as last set (only the reader's thread reads)
};

}  // namespace

std::unique_ptr<Channel> plainChannel(int fd) { return std::make_unique<PlainChannel>(fd); }

Status readExactly(Channel& channel, char* out, size_t size, Millis timeout) {
  size_t got = 0;
  while (got < size) {
    HALO_ASSIGN_OR_RETURN(size_t n, channel.read(out + got, size - got, timeout));
    got += n;
  }
  return okStatus();
}

}  // namespace halo::rfs
