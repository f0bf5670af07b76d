#pragma once
// NetlinkSocket: a raw netlink socket (NETLINK_ROUTE, NETLINK_SOCK_DIAG) with request/ack and dump
// helpers. Messages are built by the caller as byte buffers; attributes are appended with addAttr.

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace halo::sys {

// A netlink message under construction: header, fixed body, then rtattrs (4-byte aligned).
class NetlinkMessage {
 public:
  NetlinkMessage(uint16_t type, uint16_t flags, const void* body, size_t body_len);
  void addAttr(uint16_t type, const void* data, size_t len);
  // Starts a nested attribute; returns its offset for endNested.
  size_t beginNested(uint16_t type);
  void endNested(size_t offset);
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  const std::vector<uint8_t>& bytes() const { return buf_; }

 private:
  std::vector<uint8_t> buf_;
};

class NetlinkSocket {
 public:
  // Opens and binds a socket of `protocol` (NETLINK_ROUTE...) in the calling thread's namespace.
  static Result<NetlinkSocket> open(int protocol);
  ~NetlinkSocket();
  NetlinkSocket(NetlinkSocket&& other) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&& other) noexcept;
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;

  // Sends a request with NLM_F_ACK and waits for the ack; a negative ack becomes errnoStatus
  // naming `what` ("netlink RTM_NEWADDR 198.18.0.100/24 dev veth0: File exists").
  Status request(NetlinkMessage& msg, const std::string& what);
  // Sends a dump request and calls `on_message` for every message until NLMSG_DONE.
  Status dump(NetlinkMessage& msg, const std::string& what,
              const std::function<void(const nlmsghdr*)>& on_message);

 private:
  explicit NetlinkSocket(int fd) : fd_(fd) {}
  Status send(NetlinkMessage& msg, const std::string& what);
  // Reads replies to `seq`, passing each to `on_message`, until NLMSG_DONE or an ack/error.
  Status receive(uint32_t seq, const std::string& what,
                 const std::function<void(const nlmsghdr*)>& on_message);

  int fd_ = -1;
  uint32_t seq_ = 1;
};

// Iterates the rtattrs that follow a fixed body of `body_len` bytes in message `h`.
void forEachAttr(const nlmsghdr* h, size_t body_len,
                 const std::function<void(uint16_t type, const void* data, size_t len)>& fn);

}  // namespace halo::sys
