#include "sys/netlink_addr.h"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/netlink_socket.h"

namespace halo::sys {

namespace {

// Flags that describe kernel state rather than a request; never sent back on a re-add.
constexpr uint32_t kStateFlags = IFA_F_SECONDARY | IFA_F_TENTATIVE | IFA_F_DADFAILED |
                                 IFA_F_DEPRECATED | IFA_F_OPTIMISTIC | IFA_F_PERMANENT;

std::string describe(const char* op, const IpAddr& addr, int prefix, int ifindex) {
  auto name = interfaceName(ifindex);
  return std::string("netlink ") + op + " " + addr.toString() + "/" + std::to_string(prefix) +
         " dev " + (name.ok() ? *name : "#" + std::to_string(ifindex));
}

// Gives common errnos their canonical code (the message keeps errno's text).
Status classify(Status status) {
  if (status.ok()) {
    return status;
  }
  const std::string& m = status.message();
  auto endsWith = [&m](const char* tail) {
    const size_t n = std::strlen(tail);
    return m.size() >= n && m.compare(m.size() - n, n, tail) == 0;
  };
  if (endsWith(std::strerror(EEXIST))) {
    return alreadyExists(m);
  }
  if (endsWith(std::strerror(EADDRNOTAVAIL)) || endsWith(std::strerror(ENODEV))) {
    return notFound(m);
  }
  if (endsWith(std::strerror(EPERM)) || endsWith(std::strerror(EACCES))) {
    return {StatusCode::PermissionDenied, m};
  }
  return status;
}

struct AddRequest {
  int ifindex = 0;
  IpAddr addr;
  int prefix = 0;
  uint32_t flags = 0;
  std::string label;
  IpAddr broadcast;
};

Status sendNewAddr(NetlinkSocket& nl, const AddRequest& r) {
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<uint8_t>(r.addr.family);
  ifa.ifa_prefixlen = static_cast<uint8_t>(r.prefix);
  ifa.ifa_index = static_cast<uint32_t>(r.ifindex);
  ifa.ifa_flags = static_cast<uint8_t>(r.flags & 0xff);
  NetlinkMessage msg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof(ifa));
  msg.addAttr(IFA_LOCAL, r.addr.bytes.data(), r.addr.length());
  msg.addAttr(IFA_ADDRESS, r.addr.bytes.data(), r.addr.length());
  if (r.flags != 0) {
    msg.addAttr(IFA_FLAGS, &r.flags, sizeof(r.flags));
  }
  if (r.addr.family == AF_INET && !r.label.empty()) {
    msg.addAttr(IFA_LABEL, r.label.c_str(), r.label.size() + 1);
  }
  if (r.addr.family == AF_INET && r.broadcast.family == AF_INET) {
    msg.addAttr(IFA_BROADCAST, r.broadcast.bytes.data(), 4);
  }
  return classify(nl.request(msg, describe("RTM_NEWADDR", r.addr, r.prefix, r.ifindex)));
}

Status sendDelAddr(NetlinkSocket& nl, int ifindex, const IpAddr& addr, int prefix) {
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<uint8_t>(addr.family);
  ifa.ifa_prefixlen = static_cast<uint8_t>(prefix);
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  NetlinkMessage msg(RTM_DELADDR, 0, &ifa, sizeof(ifa));
  msg.addAttr(IFA_LOCAL, addr.bytes.data(), addr.length());
  msg.addAttr(IFA_ADDRESS, addr.bytes.data(), addr.length());
  return classify(nl.request(msg, describe("RTM_DELADDR", addr, prefix, ifindex)));
}

Status validate(const IpAddr& addr, int prefix) {
  if (addr.family != AF_INET && addr.family != AF_INET6) {
    return invalidArgument("VIP address family is neither IPv4 nor IPv6");
  }
  if (prefix < 0 || prefix > addr.maxPrefix()) {
    return invalidArgument("prefix /" + std::to_string(prefix) + " out of range for " +
                           addr.toString());
  }
  return okStatus();
}

}  // namespace

Result<IpAddr> IpAddr::parse(const std::string& text) {
  IpAddr a;
  if (::inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (::inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return invalidArgument("not an IPv4 or IPv6 address: '" + text + "'");
}

std::string IpAddr::toString() const {
  if (family != AF_INET && family != AF_INET6) {
    return "<unset>";
  }
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes.data(), buf, sizeof(buf));
  return buf;
}

size_t IpAddr::length() const {
  if (family == AF_INET) {
    return 4;
  }
  return family == AF_INET6 ? 16 : 0;
}

bool prefixContains(const IpAddr& net, int prefix, const IpAddr& addr) {
  if (net.family != addr.family || net.length() == 0 || prefix < 0 || prefix > net.maxPrefix()) {
    return false;
  }
  const int full = prefix / 8;
  for (int i = 0; i < full; ++i) {
    if (net.bytes[i] != addr.bytes[i]) {
      return false;
    }
  }
  const int rest = prefix % 8;
  if (rest == 0) {
    return true;
  }
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (net.bytes[full] & mask) == (addr.bytes[full] & mask);
}

Result<std::vector<AddrEntry>> listAddresses() {
  HALO_ASSIGN_OR_RETURN(NetlinkSocket nl, NetlinkSocket::open(NETLINK_ROUTE));
  ifaddrmsg req{};
  req.ifa_family = AF_UNSPEC;
  NetlinkMessage msg(RTM_GETADDR, 0, &req, sizeof(req));
  std::vector<AddrEntry> out;
  Status st = nl.dump(msg, "netlink RTM_GETADDR", [&out](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWADDR) {
      return;
    }
    const auto* ifa = reinterpret_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) {
      return;
    }
    AddrEntry e;
    e.ifindex = static_cast<int>(ifa->ifa_index);
    e.prefix = ifa->ifa_prefixlen;
    e.flags = ifa->ifa_flags;
    const size_t alen = ifa->ifa_family == AF_INET ? 4 : 16;
    bool have_local = false;
    forEachAttr(h, sizeof(ifaddrmsg), [&](uint16_t type, const void* data, size_t len) {
      if ((type == IFA_LOCAL || (type == IFA_ADDRESS && !have_local)) && len == alen) {
        e.address.family = ifa->ifa_family;
        std::memcpy(e.address.bytes.data(), data, alen);
        have_local = have_local || type == IFA_LOCAL;
      } else if (type == IFA_FLAGS && len == sizeof(uint32_t)) {
        std::memcpy(&e.flags, data, sizeof(uint32_t));
      } else if (type == IFA_LABEL && len > 0) {
        const auto* text = static_cast<const char*>(data);
        e.label.assign(text, strnlen(text, len));
      } else if (type == IFA_BROADCAST && len == 4) {
        e.broadcast.family = AF_INET;
        std::memcpy(e.broadcast.bytes.data(), data, 4);
      }
    });
    if (e.address.family == AF_UNSPEC) {
      return;
    }
    char name[IF_NAMESIZE] = {};
    if (::if_indextoname(ifa->ifa_index, name) != nullptr) {
      e.ifname = name;
    }
    out.push_back(std::move(e));
  });
  HALO_RETURN_IF_ERROR(st);
  return out;
}

Result<std::vector<AddrEntry>> listAddresses(int ifindex) {
  HALO_ASSIGN_OR_RETURN(std::vector<AddrEntry> all, listAddresses());
  std::vector<AddrEntry> out;
  for (auto& e : all) {
    if (e.ifindex == ifindex) {
      out.push_back(std::move(e));
    }
  }
  return out;
}

Status addAddress(int ifindex, const IpAddr& addr, int prefix, VipPlacement placement) {
  HALO_RETURN_IF_ERROR(validate(addr, prefix));
  HALO_ASSIGN_OR_RETURN(NetlinkSocket nl, NetlinkSocket::open(NETLINK_ROUTE));
  AddRequest vip;
  vip.ifindex = ifindex;
  vip.addr = addr;
  vip.prefix = prefix;
  vip.flags = addr.family == AF_INET6 ? IFA_F_NODAD : 0;
  if (placement == VipPlacement::kAlias || addr.family == AF_INET6) {
    return sendNewAddr(nl, vip);
  }
  // one_side, IPv4: the kernel makes the first address of a subnet (same prefix, same network)
  // its primary and every later one a secondary. Take the subnet's addresses away (secondaries
  // first, so none gets promoted), add the VIP, then put them back in their original order.
  HALO_ASSIGN_OR_RETURN(std::vector<AddrEntry> existing, listAddresses(ifindex));
  std::vector<AddrEntry> subnet;
  for (const auto& e : existing) {
    if (e.address.family != AF_INET || e.prefix != prefix ||
        !prefixContains(e.address, prefix, addr)) {
      continue;
    }
    if (e.address == addr) {
      return alreadyExists(describe("RTM_NEWADDR", addr, prefix, ifindex) + ": " +
                           std::strerror(EEXIST));
    }
    subnet.push_back(e);
  }
  for (auto it = subnet.rbegin(); it != subnet.rend(); ++it) {
    Status st = sendDelAddr(nl, ifindex, it->address, it->prefix);
    if (!st.ok() && st.code() != StatusCode::NotFound) {
      return st.withPrefix("one_side: moving existing addresses behind the VIP");
    }
  }
  Status result = sendNewAddr(nl, vip);
  for (const auto& e : subnet) {
    AddRequest again;
    again.ifindex = ifindex;
    again.addr = e.address;
    again.prefix = e.prefix;
    again.flags = e.flags & ~kStateFlags;
    again.label = e.label;
    again.broadcast = e.broadcast;
    Status st = sendNewAddr(nl, again);
    if (!st.ok() && st.code() != StatusCode::AlreadyExists && result.ok()) {
      result = st.withPrefix("one_side: re-adding " + e.address.toString());
    }
  }
  return result;
}

Status deleteAddress(int ifindex, const IpAddr& addr, int prefix) {
  HALO_RETURN_IF_ERROR(validate(addr, prefix));
  HALO_ASSIGN_OR_RETURN(NetlinkSocket nl, NetlinkSocket::open(NETLINK_ROUTE));
  if (addr.family != AF_INET) {
    return sendDelAddr(nl, ifindex, addr, prefix);
  }
  // Deleting an IPv4 primary (a one_side VIP) takes its secondaries with it unless
  // promote_secondaries is set: put back any of the subnet's other addresses that went too.
  HALO_ASSIGN_OR_RETURN(std::vector<AddrEntry> before, listAddresses(ifindex));
  std::vector<AddrEntry> siblings;
  for (const auto& e : before) {
    if (e.address.family == AF_INET && !(e.address == addr) && e.prefix == prefix &&
        prefixContains(e.address, prefix, addr)) {
      siblings.push_back(e);
    }
  }
  HALO_RETURN_IF_ERROR(sendDelAddr(nl, ifindex, addr, prefix));
  if (siblings.empty()) {
    return okStatus();
  }
  HALO_ASSIGN_OR_RETURN(std::vector<AddrEntry> after, listAddresses(ifindex));
  Status result;
  for (const auto& e : siblings) {
    const bool kept = std::any_of(after.begin(), after.end(),
                                  [&e](const AddrEntry& a) { return a.address == e.address; });
    if (kept) {
      continue;
    }
    AddRequest again;
    again.ifindex = ifindex;
    again.addr = e.address;
    again.prefix = e.prefix;
    again.flags = e.flags & ~kStateFlags;
    again.label = e.label;
    again.broadcast = e.broadcast;
    Status st = sendNewAddr(nl, again);
    if (!st.ok() && st.code() != StatusCode::AlreadyExists && result.ok()) {
      result = st.withPrefix("restoring an address deleted with primary " + addr.toString());
    }
  }
  return result;
}

Result<int> interfaceIndex(const std::string& name) {
  const unsigned idx = ::if_nametoindex(name.c_str());
  if (idx == 0) {
    return notFound("no network interface '" + name + "'");
  }
  return static_cast<int>(idx);
}

Result<std::string> interfaceName(int ifindex) {
  char name[IF_NAMESIZE] = {};
  if (::if_indextoname(static_cast<unsigned>(ifindex), name) == nullptr) {
    return notFound("no network interface with index " + std::to_string(ifindex));
  }
  return std::string(name);
}

Result<AddrEntry> findInterfaceForVip(const IpAddr& vip, const std::string& ifname) {
  HALO_ASSIGN_OR_RETURN(std::vector<AddrEntry> all, listAddresses());
  const AddrEntry* best = nullptr;
  for (const auto& e : all) {
    if (!ifname.empty() && e.ifname != ifname) {
      continue;
    }
    if (e.address == vip || e.prefix >= e.address.maxPrefix() ||
        !prefixContains(e.address, e.prefix, vip)) {
      continue;
    }
    // The most specific subnet wins; among equals the primary (listed first).
    if (best == nullptr || e.prefix > best->prefix) {
      best = &e;
    }
  }
  if (best == nullptr) {
    return notFound("no interface" + (ifname.empty() ? std::string() : " '" + ifname + "'") +
                    " has a subnet containing VIP " + vip.toString());
  }
  return *best;
}

Result<LinkState> linkState(int ifindex) {
  HALO_ASSIGN_OR_RETURN(NetlinkSocket nl, NetlinkSocket::open(NETLINK_ROUTE));
  ifinfomsg req{};
  req.ifi_family = AF_UNSPEC;
  req.ifi_index = ifindex;
  // A dump filtered in user space: a plain RTM_GETLINK for one index answers with the message
  // rather than an ack, which request() does not read.
  NetlinkMessage msg(RTM_GETLINK, 0, &req, sizeof(req));
  bool found = false;
  LinkState state;
  Status st = nl.dump(msg, "netlink RTM_GETLINK", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWLINK) {
      return;
    }
    const auto* ifi = reinterpret_cast<const ifinfomsg*>(NLMSG_DATA(h));
    if (ifi->ifi_index != ifindex) {
      return;
    }
    found = true;
    state.up = (ifi->ifi_flags & IFF_UP) != 0;
    state.running = (ifi->ifi_flags & IFF_RUNNING) != 0;
    forEachAttr(h, sizeof(ifinfomsg), [&](uint16_t type, const void* data, size_t len) {
      if (type == IFLA_IFNAME && len > 0) {
        state.name.assign(static_cast<const char*>(data),
                          strnlen(static_cast<const char*>(data), len));
      }
    });
  });
  HALO_RETURN_IF_ERROR(st);
  if (!found) {
    return notFound("no network interface with index " + std::to_string(ifindex));
  }
  return state;
}

}  // namespace halo::sys
