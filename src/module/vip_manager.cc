#include "module/vip_manager.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

#include "sys/garp.h"
#include "sys/tcp_reset.h"

namespace halo::module {

namespace {

// Repeats after the immediate announcement: one lost packet must not leave a neighbour with the
// old MAC, and switches that learn slowly after a link change get later chances (keepalived
// sends several gratuitous ARPs after a transition for the same reason).
constexpr std::array<Millis, 3> kAnnounceRepeats = {Millis(100), Millis(300), Millis(1000)};

std::string where(const config::VirtualAddrConfig& a) {
  return "<virtual_addr addr=\"" + a.addr + "\"> line " + std::to_string(a.line);
}

// A literal is only digits and dots (IPv4) or has a colon (IPv6); anything else is a host name.
bool looksLiteral(const std::string& text) {
  return text.find(':') != std::string::npos || std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || c == '.';
         });
}

Result<sys::IpAddr> resolveAddress(const config::VirtualAddrConfig& a) {
  if (a.addr.empty()) {
    return invalidArgument(where(a) + ": empty address");
  }
  if (looksLiteral(a.addr)) {
    auto parsed = sys::IpAddr::parse(a.addr);
    if (!parsed.ok()) {
      return invalidArgument(where(a) + ": " + a.addr + " is not a valid IPv4 or IPv6 address");
    }
    return parsed;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  // one answer per address instead of one per socket type
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(a.addr.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return notFound(where(a) + ": cannot resolve host name " + a.addr + ": " +
                    (rc != 0 ? ::gai_strerror(rc) : "no address"));
  }
  char text[INET6_ADDRSTRLEN] = {};
  const void* src =
      res->ai_family == AF_INET
          ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(res->ai_addr)->sin_addr)
          : static_cast<const void*>(
                &reinterpret_cast<const sockaddr_in6*>(res->ai_addr)->sin6_addr);
  const char* ok = ::inet_ntop(res->ai_family, src, text, sizeof(text));
  ::freeaddrinfo(res);
  if (ok == nullptr) {
    return internalError(where(a) + ": host name " + a.addr + " resolved to an unusable address");
  }
  return sys::IpAddr::parse(text);
}

// The netmask attribute as a prefix length for `addr`.
Result<int> parseNetmask(const config::VirtualAddrConfig& a, const sys::IpAddr& addr) {
  const std::string bad = where(a) + ": netmask \"" + a.netmask + "\" ";
  const std::string& text = a.netmask;
  int len = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), len);
  if (ec == std::errc() && end == text.data() + text.size()) {
    if (len < 1 || len > addr.maxPrefix()) {
      return invalidArgument(bad + "is not a prefix length of 1 to " +
                             std::to_string(addr.maxPrefix()) + " for " + addr.toString());
    }
    return len;
  }
  in_addr mask{};
  if (::inet_pton(AF_INET, a.netmask.c_str(), &mask) != 1) {
    return invalidArgument(bad + "is neither a dotted netmask nor a prefix length");
  }
  if (addr.family != AF_INET) {
    return invalidArgument(bad + "is a dotted IPv4 netmask; IPv6 VIP " + addr.toString() +
                           " needs a prefix length");
  }
  const uint32_t bits = ntohl(mask.s_addr);
  const uint32_t inverted = ~bits;
  // Contiguous ones from the top: the complement plus one is a power of two.
  if (bits == 0 || (inverted & (inverted + 1)) != 0) {
    return invalidArgument(bad +
                           "is not a netmask (its one bits must be contiguous, as in "
                           "255.255.255.0)");
  }
  return __builtin_popcount(bits);
}

}  // namespace

Result<std::unique_ptr<VipManager>> VipManager::create(const config::VipConfig& vip,
                                                       std::string state_path, sys::EventLoop& loop,
                                                       Log log) {
  std::vector<Vip> vips;
  for (const auto& intf : vip.interfaces) {
    for (const auto& a : intf.addrs) {
      if (a.where == config::VipWhere::Alias) {
        return invalidArgument(where(a) +
                               ": where=\"alias\" is a farm placement; a mirror module takes "
                               "where=\"one_side_alias\" or where=\"one_side\"");
      }
      Vip v;
      v.line = a.line;
      HALO_ASSIGN_OR_RETURN(v.address, resolveAddress(a));
      if (!a.netmask.empty()) {
        HALO_ASSIGN_OR_RETURN(v.configured_prefix, parseNetmask(a, v.address));
      }
      for (const auto& other : vips) {
        if (other.address == v.address) {
          return invalidArgument(where(a) + ": " + v.address.toString() +
                                 " is already a VIP at line " + std::to_string(other.line));
        }
      }
      v.configured_ifname = intf.name;
      v.placement = a.where == config::VipWhere::OneSide ? sys::VipPlacement::kPrimary
                                                         : sys::VipPlacement::kAlias;
      v.arpreroute = intf.arpreroute;
      v.arpinterval = intf.arpinterval;
      v.arpelapse = intf.arpelapse;
      vips.push_back(std::move(v));
    }
  }
  return std::unique_ptr<VipManager>(
      new VipManager(std::move(vips), vip.tcpreset, std::move(state_path), loop, std::move(log)));
}

VipManager::VipManager(std::vector<Vip> vips, bool tcpreset, std::string state_path,
                       sys::EventLoop& loop, Log log)
    : vips_(std::move(vips)),
      tcpreset_(tcpreset),
      owner_(std::move(state_path)),
      loop_(loop),
      log_(std::move(log)) {}

VipManager::~VipManager() { cancelTimers(); }

Status VipManager::cleanupLeftovers() {
  auto records = owner_.owned();
  if (!records.ok()) {
    log_(true, "Cannot read the VIP state file: " + records.status().message());
    return records.status();
  }
  if (records->empty()) {
    return okStatus();
  }
  auto before = sys::listAddresses();
  if (!before.ok()) {
    log_(true, "Cannot list addresses for the VIP leftover cleanup: " + before.status().message());
    return before.status();
  }
  Status st = owner_.cleanupLeftovers();
  auto failed = owner_.owned();
  for (const auto& o : *records) {
    const bool was_present = std::any_of(before->begin(), before->end(), [&o](const auto& e) {
      return e.address == o.address && e.ifname == o.ifname;
    });
    const bool kept = !failed.ok() || std::find(failed->begin(), failed->end(), o) != failed->end();
    if (was_present && !kept) {
      log_(false, "Virtual IP " + o.address.toString() + " left by an earlier run removed from " +
                      o.ifname);
    }
  }
  if (!st.ok()) {
    log_(true, "VIP leftover cleanup: " + st.message());
  }
  return st;
}

Status VipManager::resolveInterface(Vip& vip) {
  if (vip.configured_ifname.empty()) {
    auto carrier = sys::findInterfaceForVip(vip.address, "");
    if (!carrier.ok()) {
      if (carrier.status().code() != StatusCode::NotFound) {
        return carrier.status();
      }
      return notFound("no interface has a subnet containing VIP " + vip.address.toString() +
                      " (line " + std::to_string(vip.line) +
                      "); set <interface name=\"...\"> to choose the interface (and netmask= "
                      "for a prefix other than /" +
                      std::to_string(vip.address.maxPrefix()) + ")");
    }
    vip.ifname = carrier->ifname;
    vip.ifindex = carrier->ifindex;
    vip.prefix = vip.configured_prefix.value_or(carrier->prefix);
    return okStatus();
  }
  auto index = sys::interfaceIndex(vip.configured_ifname);
  if (!index.ok()) {
    return index.status().code() == StatusCode::NotFound
               ? notFound("interface '" + vip.configured_ifname + "' of VIP " +
                          vip.address.toString() + " (line " + std::to_string(vip.line) +
                          ") does not exist")
               : index.status();
  }
  vip.ifname = vip.configured_ifname;
  vip.ifindex = *index;
  if (vip.configured_prefix) {
    vip.prefix = *vip.configured_prefix;
    return okStatus();
  }
  auto carrier = sys::findInterfaceForVip(vip.address, vip.configured_ifname);
  if (carrier.ok()) {
    vip.prefix = carrier->prefix;
  } else if (carrier.status().code() == StatusCode::NotFound) {
    // A named interface without the subnet: a host address, as `ip addr add` would do.
    vip.prefix = vip.address.maxPrefix();
  } else {
    return carrier.status();
  }
  return okStatus();
}

Status VipManager::addOne(Vip& vip) {
  HALO_RETURN_IF_ERROR(resolveInterface(vip));
  HALO_ASSIGN_OR_RETURN(bool added,
                        owner_.addOwned(vip.ifname, vip.address, vip.prefix, vip.placement));
  const std::string name = vip.address.toString();
  if (added) {
    log_(false, "Virtual IP " + name + " added on " + vip.ifname);
  } else {
    auto records = owner_.owned();
    const bool ours = records.ok() && std::any_of(records->begin(), records->end(),
                                                  [&vip](const sys::OwnedAddress& o) {
                                                    return o.address == vip.address;
                                                  });
    if (ours) {
      log_(false, "Virtual IP " + name + " already on " + vip.ifname + " (added by this module)");
    } else {
      log_(true, "Virtual IP " + name + " already present on " + vip.ifname +
                     ", not owned: it will be left in place when the module stops");
    }
  }
  return okStatus();
}

Status VipManager::add() {
  cancelTimers();
  added_ = true;
  Status first;
  const MonotonicTime start = loop_.time().monotonicTime();
  for (size_t i = 0; i < vips_.size(); ++i) {
    Vip& vip = vips_[i];
    Status st = addOne(vip);
    if (!st.ok()) {
      log_(true, "Virtual IP " + vip.address.toString() + " not added: " + st.message());
      if (first.ok()) {
        first = st.withPrefix("adding VIP " + vip.address.toString());
      }
      continue;
    }
    vip.announce_failed = false;
    announce(vip);
    scheduleBurst(i);
    if (vip.arpreroute && vip.arpinterval.count() > 0 && vip.arpinterval <= vip.arpelapse) {
      scheduleReroute(i, start);
    }
  }
  return first;
}

void VipManager::announce(Vip& vip) {
  Status st = sys::announceVip(vip.ifindex, vip.address);
  if (!st.ok() && !vip.announce_failed) {
    vip.announce_failed = true;
    log_(true, "Cannot announce Virtual IP " + vip.address.toString() + " on " + vip.ifname + ": " +
                   st.message());
  }
}

void VipManager::scheduleBurst(size_t index) {
  for (Millis delay : kAnnounceRepeats) {
    addTimer(delay, [this, index] { announce(vips_[index]); });
  }
}

void VipManager::scheduleReroute(size_t index, MonotonicTime start) {
  const Vip& vip = vips_[index];
  addTimer(vip.arpinterval, [this, index, start] {
    Vip& v = vips_[index];
    announce(v);
    if (loop_.time().monotonicTime() - start + v.arpinterval <= v.arpelapse) {
      scheduleReroute(index, start);
    }
  });
}

void VipManager::addTimer(Millis delay, std::function<void()> cb) {
  // The id is only known once added; the callback reads it when it fires, later.
  auto id = std::make_shared<sys::EventLoop::Id>(0);
  *id = loop_.addTimer(delay, [this, id, cb = std::move(cb)] {
    std::erase(timers_, *id);
    cb();
  });
  timers_.push_back(*id);
}

void VipManager::cancelTimers() {
  for (sys::EventLoop::Id id : timers_) {
    loop_.cancelTimer(id);
  }
  timers_.clear();
}

Status VipManager::removeOne(Vip& vip) {
  HALO_ASSIGN_OR_RETURN(std::vector<sys::OwnedAddress> records, owner_.owned());
  auto record = std::find_if(records.begin(), records.end(), [&vip](const sys::OwnedAddress& o) {
    return o.address == vip.address;
  });
  if (record == records.end()) {
    return okStatus();  // not ours: never removed
  }
  const std::string name = vip.address.toString();
  const std::string ifname = record->ifname;
  if (tcpreset_) {
    auto report = sys::resetTcpConnections(vip.address);
    if (!report.ok()) {
      // Best effort: the VIP must go even if its connections could not be listed.
      log_(true, "tcpreset of Virtual IP " + name + " failed: " + report.status().message());
    } else {
      if (report->found > 0) {
        log_(false, "tcpreset of Virtual IP " + name + ": " + std::to_string(report->found) +
                        " TCP connection(s) found, " + std::to_string(report->destroyed) +
                        " reset");
      }
      if (!report->warning.empty()) {
        log_(true, "tcpreset of Virtual IP " + name + ": " + report->warning);
      }
    }
  }
  HALO_ASSIGN_OR_RETURN(std::vector<sys::AddrEntry> present, sys::listAddresses());
  const bool was_present = std::any_of(
      present.begin(), present.end(),
      [&](const sys::AddrEntry& e) { return e.address == vip.address && e.ifname == ifname; });
  HALO_RETURN_IF_ERROR(owner_.removeOwned(vip.address));
  if (was_present) {
    log_(false, "Virtual IP " + name + " removed from " + ifname);
  } else {
    log_(false, "Virtual IP " + name + " was already gone from " + ifname);
  }
  return okStatus();
}

Status VipManager::remove() {
  cancelTimers();
  Status first;
  for (Vip& vip : vips_) {
    Status st = removeOne(vip);
    if (!st.ok()) {
      log_(true, "Virtual IP " + vip.address.toString() + " not removed: " + st.message());
      if (first.ok()) {
        first = st.withPrefix("removing VIP " + vip.address.toString());
      }
    }
  }
  added_ = false;
  return first;
}

nlohmann::json VipManager::describe() const {
  auto records = owner_.owned();
  auto present = sys::listAddresses();
  nlohmann::json out = nlohmann::json::array();
  for (const Vip& vip : vips_) {
    nlohmann::json j;
    j["addr"] = vip.address.toString();
    const std::string ifname = vip.ifname.empty() ? vip.configured_ifname : vip.ifname;
    j["interface"] = ifname;
    if (vip.prefix > 0) {
      j["prefix"] = vip.prefix;
    } else if (vip.configured_prefix) {
      j["prefix"] = *vip.configured_prefix;
    } else {
      j["prefix"] = nullptr;
    }
    if (present.ok()) {
      j["present"] = std::any_of(present->begin(), present->end(), [&](const auto& e) {
        return e.address == vip.address && (ifname.empty() || e.ifname == ifname);
      });
    } else {
      j["present"] = false;
      j["error"] = present.status().message();
    }
    j["owned"] = records.ok() &&
                 std::any_of(records->begin(), records->end(), [&vip](const sys::OwnedAddress& o) {
                   return o.address == vip.address;
                 });
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace halo::module
