#pragma once
// Blocking probes behind the checkers (reference 3.2.11): TCP connect, ICMP echo, interface link
// and address presence. Each wait is bounded by its timeout (name resolution by the resolver's
// own), and no probe keeps shared state, so checker threads may run them concurrently.

#include <string>

#include "base/time_source.h"

namespace halo::sys {

struct ProbeOutcome {
  bool up = false;
  // Why it is down ("connect 127.0.0.1:5432: Connection refused"), or what was seen when up.
  std::string detail;
};

// Up when addr:port (IPv4/IPv6 literal or host name) accepts a TCP connection within timeout.
ProbeOutcome probeTcp(const std::string& addr, int port, Millis timeout);
// Up when addr answers an ICMP (ICMPv6) echo within timeout. Uses an unprivileged ping socket
// when net.ipv4.ping_group_range allows it, else a raw socket (CAP_NET_RAW).
ProbeOutcome probePing(const std::string& addr, Millis timeout);
// Up iff the interface holding local_addr is up (IFF_UP) and has link (IFF_RUNNING).
ProbeOutcome probeInterface(const std::string& local_addr);
// Up iff some interface holds addr (a VIP that vanished is down).
ProbeOutcome probeAddressPresent(const std::string& addr);

}  // namespace halo::sys
