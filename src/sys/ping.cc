// probePing (declared in sys/probes.h): one ICMP/ICMPv6 echo per second until a reply or the
// timeout, so a single lost packet does not mark the peer down.

#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "sys/probe_util.h"
#include "sys/probes.h"

namespace halo::sys {

namespace {

constexpr Millis kResendInterval{1000};
constexpr uint8_t kEchoRequestV4 = 8;
constexpr uint8_t kEchoReplyV4 = 0;
constexpr uint8_t kEchoRequestV6 = 128;
constexpr uint8_t kEchoReplyV6 = 129;
constexpr size_t kHeaderBytes = 8;  // type, code, checksum, id, sequence
constexpr size_t kCookieBytes = 16;

struct PingSocket {
  int fd = -1;
  bool raw = false;  // raw sockets see every ICMP packet (IPv4 with its IP header) and our id
};

struct Echo {
  uint16_t id = 0;
  std::array<uint8_t, kCookieBytes> cookie{};  // a payload only our replies carry
};

Result<PingSocket> openPingSocket(int family) {
  const int proto = family == AF_INET6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
  const int flags = SOCK_CLOEXEC | SOCK_NONBLOCK;
  int fd = socket(family, SOCK_DGRAM | flags, proto);
  if (fd >= 0) {
    return PingSocket{fd, false};
  }
  const int dgram_err = errno;
  if (dgram_err != EACCES && dgram_err != EPERM && dgram_err != EPROTONOSUPPORT &&
      dgram_err != ESOCKTNOSUPPORT) {
    return errnoStatus("open ICMP socket", dgram_err);
  }
  fd = socket(family, SOCK_RAW | flags, proto);
  if (fd < 0) {
    const int e = errno;
    return internalError(std::string("open ICMP socket: ") + std::strerror(e) +
                         " (unprivileged ping not allowed by net.ipv4.ping_group_range: " +
                         std::strerror(dgram_err) + "; a raw socket needs CAP_NET_RAW)");
  }
  // Raw sockets get every ICMP message the host receives: keep only echo replies.
  if (family == AF_INET) {
    icmp_filter filter{~(1U << ICMP_ECHOREPLY)};
    setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter));
  } else {
    icmp6_filter filter;
    ICMP6_FILTER_SETBLOCKALL(&filter);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
    setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof(filter));
  }
  return PingSocket{fd, true};
}

Echo makeEcho() {
  Echo e;
  uint8_t bytes[2 + kCookieBytes];
  if (getrandom(bytes, sizeof(bytes), 0) != static_cast<ssize_t>(sizeof(bytes))) {
    // Not secret, only distinct between concurrent probes: the stack address differs per thread.
    const auto seed = reinterpret_cast<uintptr_t>(&e) ^ static_cast<uintptr_t>(getpid());
    for (size_t i = 0; i < sizeof(bytes); ++i) {
      bytes[i] = static_cast<uint8_t>(seed >> ((i % sizeof(seed)) * 8));
    }
  }
  e.id = static_cast<uint16_t>(bytes[0] << 8 | bytes[1]);
  std::memcpy(e.cookie.data(), bytes + 2, kCookieBytes);
  return e;
}

uint16_t checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  }
  if (n % 2 != 0) {
    sum += static_cast<uint32_t>(p[n - 1] << 8);
  }
  while (sum >> 16 != 0) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<uint16_t>(~sum);
}

std::array<uint8_t, kHeaderBytes + kCookieBytes> echoRequest(bool v6, const Echo& e, uint16_t seq) {
  std::array<uint8_t, kHeaderBytes + kCookieBytes> pkt{};
  pkt[0] = v6 ? kEchoRequestV6 : kEchoRequestV4;
  pkt[4] = static_cast<uint8_t>(e.id >> 8);
  pkt[5] = static_cast<uint8_t>(e.id);
  pkt[6] = static_cast<uint8_t>(seq >> 8);
  pkt[7] = static_cast<uint8_t>(seq);
  std::memcpy(pkt.data() + kHeaderBytes, e.cookie.data(), kCookieBytes);
  if (!v6) {  // the kernel fills in ICMPv6 checksums (it needs the pseudo-header)
    const uint16_t sum = checksum(pkt.data(), pkt.size());
    pkt[2] = static_cast<uint8_t>(sum >> 8);
    pkt[3] = static_cast<uint8_t>(sum);
  }
  return pkt;
}

// True for a reply to one of the `sent` requests of this probe.
bool isOurReply(const uint8_t* p, size_t n, bool v6, const PingSocket& s, const Echo& e,
                uint16_t sent) {
  if (s.raw && !v6) {  // IPv4 raw sockets deliver the IP header too
    if (n < 20 || (p[0] >> 4) != 4) {
      return false;
    }
    const size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
    if (n < ihl) {
      return false;
    }
    p += ihl;
    n -= ihl;
  }
  if (n < kHeaderBytes + kCookieBytes || p[0] != (v6 ? kEchoReplyV6 : kEchoReplyV4)) {
    return false;
  }
  // Ping sockets rewrite the id to their own and deliver only replies carrying it.
  const uint16_t id = static_cast<uint16_t>(p[4] << 8 | p[5]);
  const uint16_t seq = static_cast<uint16_t>(p[6] << 8 | p[7]);
  return (!s.raw || id == e.id) && seq >= 1 && seq <= sent &&
         std::memcmp(p + kHeaderBytes, e.cookie.data(), kCookieBytes) == 0;
}

}  // namespace

ProbeOutcome probePing(const std::string& addr, Millis timeout) {
  auto endpoints = probe::resolve(addr, SOCK_DGRAM);
  if (!endpoints.ok()) {
    return {false, endpoints.status().message()};
  }
  const probe::Endpoint& target = endpoints->front();
  const bool v6 = target.family() == AF_INET6;
  const std::string kind = v6 ? "ICMPv6" : "ICMP";
  const std::string host = probe::numericHost(target);
  auto sock = openPingSocket(target.family());
  if (!sock.ok()) {
    return {false, sock.status().message()};
  }
  const Echo echo = makeEcho();
  probe::Deadline deadline(timeout);
  probe::Deadline resend(Millis(0));
  uint16_t sent = 0;
  ProbeOutcome out{false, "no " + kind + " echo reply from " + host + " within " +
                              std::to_string(timeout.count()) + " ms"};
  while (!deadline.expired()) {
    if (resend.expired()) {
      const auto pkt = echoRequest(v6, echo, static_cast<uint16_t>(sent + 1));
      if (sendto(sock->fd, pkt.data(), pkt.size(), 0,
                 reinterpret_cast<const sockaddr*>(&target.addr), target.len) < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          out.detail = "send " + kind + " echo to " + host + ": " + std::strerror(errno);
          break;
        }
      } else {
        ++sent;
      }
      resend = probe::Deadline(kResendInterval);
    }
    pollfd p{sock->fd, POLLIN, 0};
    const int rc = poll(&p, 1, std::min(deadline.remainingMs(), resend.remainingMs()));
    if (rc <= 0) {
      continue;  // timeout or EINTR: the loop re-checks both deadlines
    }
    uint8_t buf[2048];
    const ssize_t n = recv(sock->fd, buf, sizeof(buf), 0);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      out.detail = kind + " echo to " + host + ": " + std::strerror(errno);
      break;
    }
    if (n > 0 && isOurReply(buf, static_cast<size_t>(n), v6, *sock, echo, sent)) {
      out = {true, kind + " echo reply from " + host};
      break;
    }
  }
  close(sock->fd);
  return out;
}

}  // namespace halo::sys
