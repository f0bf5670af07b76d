#include "sys/netlink_socket.h"

#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace halo::sys {

namespace {
constexpr size_t kRecvBufferSize = 64 * 1024;

size_t align4(size_t n) { return (n + 3) & ~static_cast<size_t>(3); }
}  // namespace

NetlinkMessage::NetlinkMessage(uint16_t type, uint16_t flags, const void* body, size_t body_len) {
  buf_.resize(NLMSG_HDRLEN + align4(body_len), 0);
  if (body_len > 0) {
    std::memcpy(buf_.data() + NLMSG_HDRLEN, body, body_len);
  }
  nlmsghdr* h = header();
  h->nlmsg_type = type;
  h->nlmsg_flags = flags;
  h->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

void NetlinkMessage::addAttr(uint16_t type, const void* data, size_t len) {
  const size_t offset = buf_.size();
  buf_.resize(offset + align4(RTA_LENGTH(len)), 0);
  auto* rta = reinterpret_cast<rtattr*>(buf_.data() + offset);
  rta->rta_type = type;
  rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
  if (len > 0) {
    std::memcpy(RTA_DATA(rta), data, len);
  }
  header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

size_t NetlinkMessage::beginNested(uint16_t type) {
  const size_t offset = buf_.size();
  addAttr(type, nullptr, 0);
  return offset;
}

void NetlinkMessage::endNested(size_t offset) {
  auto* rta = reinterpret_cast<rtattr*>(buf_.data() + offset);
  rta->rta_len = static_cast<uint16_t>(buf_.size() - offset);
}

Result<NetlinkSocket> NetlinkSocket::open(int protocol) {
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    return errnoStatus("socket(AF_NETLINK)", errno);
  }
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    const int err = errno;
    ::close(fd);
    return errnoStatus("bind(AF_NETLINK)", err);
  }
  const int one = 1;
  // Extended acks give the kernel's reason text; ignore failure on old kernels.
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  return NetlinkSocket(fd);
}

NetlinkSocket::~NetlinkSocket() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), seq_(other.seq_) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
    seq_ = other.seq_;
  }
  return *this;
}

Status NetlinkSocket::send(NetlinkMessage& msg, const std::string& what) {
  msg.header()->nlmsg_seq = ++seq_;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  const auto& bytes = msg.bytes();
  const ssize_t n = ::sendto(fd_, bytes.data(), bytes.size(), 0,
                             reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
  if (n < 0) {
    return errnoStatus(what + ": sendto", errno);
  }
  return okStatus();
}

Status NetlinkSocket::receive(uint32_t seq, const std::string& what,
                              const std::function<void(const nlmsghdr*)>& on_message) {
  std::vector<uint8_t> buf(kRecvBufferSize);
  for (;;) {
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errnoStatus(what + ": recv", errno);
    }
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(h, len);
         h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) {
        continue;
      }
      if (h->nlmsg_type == NLMSG_DONE) {
        return okStatus();
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* err = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(h));
        return err->error == 0 ? okStatus() : errnoStatus(what, -err->error);
      }
      on_message(h);
    }
  }
}

Status NetlinkSocket::request(NetlinkMessage& msg, const std::string& what) {
  msg.header()->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  HALO_RETURN_IF_ERROR(send(msg, what));
  // Only the ack (an NLMSG_ERROR, 0 when successful) ends a request.
  return receive(msg.header()->nlmsg_seq, what, [](const nlmsghdr*) {});
}

Status NetlinkSocket::dump(NetlinkMessage& msg, const std::string& what,
                           const std::function<void(const nlmsghdr*)>& on_message) {
  msg.header()->nlmsg_flags |= NLM_F_REQUEST | NLM_F_DUMP;
  HALO_RETURN_IF_ERROR(send(msg, what));
  return receive(msg.header()->nlmsg_seq, what, on_message);
}

void forEachAttr(const nlmsghdr* h, size_t body_len,
                 const std::function<void(uint16_t type, const void* data, size_t len)>& fn) {
  const size_t offset = NLMSG_HDRLEN + NLMSG_ALIGN(body_len);
  if (h->nlmsg_len < offset) {
    return;
  }
  int len = static_cast<int>(h->nlmsg_len - offset);
  const auto* rta = reinterpret_cast<const rtattr*>(reinterpret_cast<const uint8_t*>(h) + offset);
  for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
    fn(rta->rta_type, RTA_DATA(rta), RTA_PAYLOAD(rta));
  }
}

}  // namespace halo::sys
