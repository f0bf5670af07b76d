#pragma once
// VipManager: the <vip> of a mirror module on the primary node. It adds the virtual addresses
// when the module becomes primary, announces them so neighbours remap them to this node, and
// removes them (after resetting their TCP connections) when it stops. Only addresses it added
// are ever removed, even after a crash: ownership is kept in a state file (sys::VipOwner).
//
// Thread-safety: not thread-safe; every method, the destructor included, runs on `loop`'s thread
// (or before the loop runs), in the network namespace holding the interfaces.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "base/time_source.h"
#include "config/vip_config.h"
#include "sys/event_loop.h"
#include "sys/netlink_addr.h"
#include "sys/vip_owner.h"

namespace halo::module {

class VipManager {
 public:
  // `error` marks errors and warnings (lines the user must see); runs on the loop.
  using Log = std::function<void(bool error, const std::string& message)>;

  // Resolves every <virtual_addr> of `vip` (IPv4/IPv6 literal or host name via getaddrinfo,
  // first answer), for mirror placement: where="one_side_alias" -> sys::VipPlacement::kAlias,
  // "one_side" -> kPrimary; where="alias" is a farm placement and is refused (InvalidArgument
  // naming the config line). The interface is <interface name=...> when given, else found with
  // sys::findInterfaceForVip; the prefix is the netmask attribute when given (dotted IPv4 mask or
  // prefix length), else the carrier address's prefix. The interface is resolved at add() time
  // (interfaces may appear later), but bad literals and masks fail here, with messages naming the
  // address and its line but no file (the caller knows which file). Host names are resolved here,
  // once: getaddrinfo blocks, so create() must run before the module's loop does real work.
  // `state_path`: the ownership file (e.g. $RUN/modules/AM/vip.json); its directory must exist.
  static Result<std::unique_ptr<VipManager>> create(const config::VipConfig& vip,
                                                    std::string state_path, sys::EventLoop& loop,
                                                    Log log);
  // Cancels pending announcements; leaves the addresses in place (a restart cleans them up, see
  // cleanupLeftovers()), so destroying without remove() behaves like a crash.
  ~VipManager();
  VipManager(const VipManager&) = delete;
  VipManager& operator=(const VipManager&) = delete;

  // At runtime start: removes the addresses a crashed earlier run recorded in the state file
  // (sys::VipOwner::cleanupLeftovers) and logs each removal.
  Status cleanupLeftovers();

  // Adds every VIP (sys::VipOwner::addOwned: recorded before the add; an address already present
  // that we did not add is left unrecorded and logged as a warning "already present, not owned"),
  // then announces each one (sys::announceVip: gratuitous ARP / unsolicited NA) at once and again
  // at +100 ms, +300 ms and +1 s, and, when its interface has arpreroute on, every arpinterval
  // during arpelapse (timers on the loop, cancelled by remove() and destruction). Logs
  // "Virtual IP <addr> added on <if>". Returns the first error but still tries the others, and
  // logs which address failed and why. Calling it again re-adds what is missing.
  Status add();

  // Cancels announcements; when vip@tcpreset, resets the TCP connections bound to each owned VIP
  // (sys::resetTcpConnections; logs what was found and destroyed, and any warning), then removes
  // it (sys::VipOwner::removeOwned). Logs "Virtual IP <addr> removed from <if>". Addresses not
  // owned are left alone. Idempotent; returns the first error but still tries the others.
  Status remove();

  // True from add() until remove(), also when add() failed for some VIP (remove() then undoes
  // what was added).
  bool added() const { return added_; }

  // For `halo state -v`, one entry per VIP:
  // [{"addr":"198.18.0.100","interface":"eth0","prefix":24,"present":true,"owned":true}]
  // "interface" and "prefix" are those of the last add() (before it: the configured ones, "" and
  // null when auto-detected); "present" is queried now; "owned": recorded in the state file.
  nlohmann::json describe() const;

 private:
  struct Vip {
    // From the configuration.
    sys::IpAddr address;
    std::string configured_ifname;         // empty: auto-detect
    std::optional<int> configured_prefix;  // netmask attribute
    sys::VipPlacement placement = sys::VipPlacement::kAlias;
    bool arpreroute = false;
    Millis arpinterval{0};
    Millis arpelapse{0};
    int line = 0;
    // Resolved by the last add().
    std::string ifname;
    int ifindex = 0;
    int prefix = 0;
    bool announce_failed = false;  // only the first failed announcement per add() is logged
  };

  VipManager(std::vector<Vip> vips, bool tcpreset, std::string state_path, sys::EventLoop& loop,
             Log log);

  Status addOne(Vip& vip);
  Status removeOne(Vip& vip);
  // Interface and prefix for the VIP, from the configuration or the carrier address.
  Status resolveInterface(Vip& vip);
  void announce(Vip& vip);
  void scheduleBurst(size_t index);
  void scheduleReroute(size_t index, MonotonicTime start);
  void addTimer(Millis delay, std::function<void()> cb);
  void cancelTimers();

  std::vector<Vip> vips_;
  const bool tcpreset_;
  sys::VipOwner owner_;
  sys::EventLoop& loop_;
  Log log_;
  bool added_ = false;
  std::vector<sys::EventLoop::Id> timers_;  // pending announcement timers
};

}  // namespace halo::module
