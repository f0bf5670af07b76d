#include "sys/garp.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace halo::sys {

namespace {

constexpr size_t kMacLen = 6;

// Closes a descriptor at scope exit.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<std::array<uint8_t, kMacLen>> interfaceMac(int fd, const std::string& ifname) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) {
    return errnoStatus("SIOCGIFHWADDR " + ifname, errno);
  }
  std::array<uint8_t, kMacLen> mac{};
  std::memcpy(mac.data(), ifr.ifr_hwaddr.sa_data, kMacLen);
  return mac;
}

// The ARP payload (Ethernet/IPv4) after the link header, which the kernel builds for SOCK_DGRAM.
struct __attribute__((packed)) ArpPacket {
  uint16_t htype;
  uint16_t ptype;
  uint8_t hlen;
  uint8_t plen;
  uint16_t op;
  uint8_t sha[kMacLen];
  uint8_t spa[4];
  uint8_t tha[kMacLen];
  uint8_t tpa[4];
};

struct __attribute__((packed)) NaPacket {
  nd_neighbor_advert na;
  uint8_t opt_type;
  uint8_t opt_len;  // in units of 8 bytes
  uint8_t mac[kMacLen];
};

}  // namespace

Status sendGratuitousArp(int ifindex, const IpAddr& vip) {
  if (vip.family != AF_INET) {
    return invalidArgument("gratuitous ARP needs an IPv4 address, not " + vip.toString());
  }
  HALO_ASSIGN_OR_RETURN(std::string ifname, interfaceName(ifindex));
  const std::string what = "gratuitous ARP " + vip.toString() + " dev " + ifname;
  FdGuard fd(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP)));
  if (fd.get() < 0) {
    return errnoStatus(what + ": socket(AF_PACKET)", errno);
  }
  auto mac = interfaceMac(fd.get(), ifname);
  if (!mac.ok()) {
    return mac.status().withPrefix(what);
  }
  ArpPacket arp{};
  arp.htype = htons(ARPHRD_ETHER);
  arp.ptype = htons(ETH_P_IP);
  arp.hlen = kMacLen;
  arp.plen = 4;
  arp.op = htons(ARPOP_REQUEST);
  std::memcpy(arp.sha, mac->data(), kMacLen);
  std::memcpy(arp.spa, vip.bytes.data(), 4);
  std::memcpy(arp.tpa, vip.bytes.data(), 4);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = ifindex;
  to.sll_halen = kMacLen;
  std::memset(to.sll_addr, 0xff, kMacLen);
  if (::sendto(fd.get(), &arp, sizeof(arp), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0) {
    return errnoStatus(what + ": sendto", errno);
  }
  return okStatus();
}

Status sendUnsolicitedNa(int ifindex, const IpAddr& vip) {
  if (vip.family != AF_INET6) {
    return invalidArgument("neighbour advertisement needs an IPv6 address, not " + vip.toString());
  }
  HALO_ASSIGN_OR_RETURN(std::string ifname, interfaceName(ifindex));
  const std::string what = "unsolicited NA " + vip.toString() + " dev " + ifname;
  FdGuard fd(::socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
  if (fd.get() < 0) {
    return errnoStatus(what + ": socket(ICMPv6)", errno);
  }
  auto mac = interfaceMac(fd.get(), ifname);
  if (!mac.ok()) {
    return mac.status().withPrefix(what);
  }
  const int hops = 255;
  const unsigned idx = static_cast<unsigned>(ifindex);
  const int one = 1;
  if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) != 0 ||
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof(hops)) != 0 ||
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof(idx)) != 0 ||
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one)) != 0) {
    return errnoStatus(what + ": setsockopt", errno);
  }
  // From the VIP itself (freebind: a tentative address is fine), so neighbours learn it directly.
  sockaddr_in6 from{};
  from.sin6_family = AF_INET6;
  std::memcpy(&from.sin6_addr, vip.bytes.data(), 16);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0) {
    return errnoStatus(what + ": bind", errno);
  }
  NaPacket pkt{};
  pkt.na.nd_na_type = ND_NEIGHBOR_ADVERT;
  pkt.na.nd_na_code = 0;
  pkt.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
  std::memcpy(&pkt.na.nd_na_target, vip.bytes.data(), 16);
  pkt.opt_type = ND_OPT_TARGET_LINKADDR;
  pkt.opt_len = 1;
  std::memcpy(pkt.mac, mac->data(), kMacLen);
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_scope_id = idx;
  ::inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
  // The kernel fills in the ICMPv6 checksum for raw ICMPv6 sockets.
  if (::sendto(fd.get(), &pkt, sizeof(pkt), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0) {
    return errnoStatus(what + ": sendto", errno);
  }
  return okStatus();
}

Status announceVip(int ifindex, const IpAddr& vip) {
  return vip.family == AF_INET ? sendGratuitousArp(ifindex, vip) : sendUnsolicitedNa(ifindex, vip);
}

}  // namespace halo::sys
