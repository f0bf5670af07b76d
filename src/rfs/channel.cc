#include "rfs/channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace halo::rfs {

namespace {

class PlainChannel : public Channel {
 public:
  explicit PlainChannel(int fd) : fd_(fd) { fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK); }
  ~PlainChannel() override { ::close(fd_); }

  Status writeAll(std::string_view data, Millis timeout) override {
    while (!data.empty()) {
      if (closed_.load()) {
        return unavailable("the connection was shut down");
      }
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
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

  Result<size_t> read(char* out, size_t size, Millis timeout) override {
    while (true) {
      if (closed_.load()) {
        return unavailable("the connection was shut down");
      }
      ssize_t n = ::recv(fd_, out, size, 0);
      if (n > 0) {
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        return unavailable("connection closed by the peer");
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return unavailable(std::string("recv: ") + std::strerror(errno));
      }
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
      if (r == 0) {
        return deadlineExceeded("nothing received for " + std::to_string(timeout.count()) + " ms");
      }
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
