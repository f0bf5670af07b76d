#pragma once
// tcpreset (userconfig.xml vip@tcpreset): before a VIP is removed, reset every TCP connection whose
// local address is the VIP, so clients fail over at once instead of waiting for a timeout. Uses the
// kernel's SOCK_DESTROY through NETLINK_SOCK_DIAG (CONFIG_INET_DIAG_DESTROY, CAP_NET_ADMIN): the
// kernel sends a RST to the peer and the local owner sees ECONNABORTED. Listening sockets are kept.

#include <string>

#include "base/status.h"
#include "sys/netlink_addr.h"

namespace halo::sys {

struct TcpResetReport {
  int found = 0;      // connections whose local address is the VIP
  int destroyed = 0;  // of those, destroyed by the kernel
  // Non-empty when the kernel cannot destroy sockets (EOPNOTSUPP: no CONFIG_INET_DIAG_DESTROY) or
  // a socket vanished meanwhile; the VIP removal should carry on and log this.
  std::string warning;
};

// Dumps the TCP sockets bound to `vip` (IPv4 VIPs also match v4-mapped sockets of dual-stack
// listeners) and destroys each. Errors are only returned when the dump itself fails.
Result<TcpResetReport> resetTcpConnections(const IpAddr& vip);

}  // namespace halo::sys
