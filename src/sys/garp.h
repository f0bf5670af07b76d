#pragma once
// Announcing a VIP after it moved: gratuitous ARP (IPv4) and unsolicited neighbour advertisement
// (IPv6), so switches and neighbours remap the VIP to this node's MAC. Each call sends one packet;
// the caller repeats it (a few times after an add; every arpinterval during arpelapse when
// arpreroute is on). Needs CAP_NET_RAW. Works in the calling thread's network namespace.

#include "base/status.h"
#include "sys/netlink_addr.h"

namespace halo::sys {

// One broadcast ARP request on the interface: sender IP = target IP = vip, sender MAC = the
// interface's MAC, target MAC zero.
Status sendGratuitousArp(int ifindex, const IpAddr& vip);

// One ICMPv6 neighbour advertisement to ff02::1 from the VIP, target = vip, override flag set,
// target link-layer address option = the interface's MAC, hop limit 255.
Status sendUnsolicitedNa(int ifindex, const IpAddr& vip);

// Either of the above, by the VIP's family.
Status announceVip(int ifindex, const IpAddr& vip);

}  // namespace halo::sys
