#pragma once
// Interface addresses and link state through rtnetlink (NETLINK_ROUTE): what the VIP manager needs
// to add, list and remove virtual IPs. Every call works in the calling thread's network namespace.

#include <linux/if_addr.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace halo::sys {

// An IPv4 or IPv6 address in network byte order.
struct IpAddr {
  int family = AF_UNSPEC;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};

  // "198.18.0.100" or "fd00:198:18::100"; InvalidArgument otherwise.
  static Result<IpAddr> parse(const std::string& text);
  std::string toString() const;
  // 4 or 16 (0 when unset).
  size_t length() const;
  int maxPrefix() const { return family == AF_INET ? 32 : 128; }
  bool operator==(const IpAddr& other) const = default;
};

// True when `addr` is inside network `net`/`prefix` (same family).
bool prefixContains(const IpAddr& net, int prefix, const IpAddr& addr);

struct AddrEntry {
  int ifindex = 0;
  std::string ifname;
  IpAddr address;
  int prefix = 0;
  uint32_t flags = 0;  // IFA_F_* (IFA_F_SECONDARY, IFA_F_NODAD, IFA_F_TENTATIVE...)
  std::string label;   // IPv4 label (IFA_LABEL, e.g. "eth0:1"), empty for IPv6
  IpAddr broadcast;    // IPv4 broadcast (IFA_BROADCAST) when set
  bool secondary() const { return (flags & IFA_F_SECONDARY) != 0; }
};

// How a VIP is placed on its interface (userconfig.xml virtual_addr@where).
enum class VipPlacement {
  kAlias,    // one_side_alias: an extra address; the interface keeps its primary address
  kPrimary,  // one_side: the VIP becomes the interface's primary (preferred source) address
};

struct LinkState {
  std::string name;
  bool up = false;       // IFF_UP (administratively up)
  bool running = false;  // IFF_RUNNING (carrier, operationally up)
};

// Every address of every interface, in kernel order (primary before its secondaries).
Result<std::vector<AddrEntry>> listAddresses();
// Addresses of one interface, in kernel order.
Result<std::vector<AddrEntry>> listAddresses(int ifindex);

// Adds addr/prefix to the interface. IPv6 addresses are added with IFA_F_NODAD (a VIP moving
// between nodes must be usable at once, as keepalived does). kPrimary: see docs/vip.md; for IPv4
// the existing addresses of the VIP's subnet are removed and re-added after the VIP so that the VIP
// becomes the subnet's primary address; for IPv6 the newest address is preferred by the kernel's
// source selection among equals, so it is a plain add. AlreadyExists when it is present.
Status addAddress(int ifindex, const IpAddr& addr, int prefix, VipPlacement placement);
// Removes addr/prefix from the interface; NotFound when it is absent. When an IPv4 primary goes
// (a one_side VIP), the kernel may delete the subnet's secondaries with it; those are re-added.
Status deleteAddress(int ifindex, const IpAddr& addr, int prefix);

// Interface index for a name; NotFound when there is no such interface.
Result<int> interfaceIndex(const std::string& name);
// Interface name for an index; NotFound when there is no such interface.
Result<std::string> interfaceName(int ifindex);

// The address entry whose subnet contains `vip` (the VIP's carrier). With a non-empty `ifname`
// only that interface is considered. Addresses equal to the VIP itself are skipped, as are host
// prefixes (/32, /128). NotFound when no interface has the subnet.
Result<AddrEntry> findInterfaceForVip(const IpAddr& vip, const std::string& ifname);

Result<LinkState> linkState(int ifindex);

}  // namespace halo::sys
