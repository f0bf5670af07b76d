#pragma once
// <farm> membership (reference 3.2.5) and <vip> virtual addresses and load balancing (3.2.6).

#include <optional>
#include <string>
#include <vector>

#include "base/time_source.h"
#include "config/service_config.h"

namespace halo::config {

struct FarmLanConfig {
  std::string name;  // a lan of cluster.xml
  int line = 0;
};

struct FarmConfig {
  std::optional<int> port;  // nullopt: 4803 + (module id - 1) * 3
  Millis pulse{100};        // implicit unit ms
  int mlost_count = 20;
  int slost_count = 10;
  std::vector<FarmLanConfig> lans;  // at least one
  int line = 0;
};

// Farm: alias on every node. Mirror: one_side_alias (alias on the primary) or one_side (primary
// address of the interface on the primary).
enum class VipWhere { Alias, OneSideAlias, OneSide };

struct VirtualAddrConfig {
  std::string addr;                         // IPv4/IPv6 or host name
  VipWhere where = VipWhere::OneSideAlias;  // farm default: Alias
  bool check = true;                        // generates the ip.<addr> checker
  bool connections = false;                 // counts connections into connections.<addr>
  std::string netmask;                      // empty = the interface's
  int line = 0;
};

enum class VmacType { Directed, Invisible };

struct VirtualInterfaceConfig {  // farm only
  VmacType type = VmacType::Directed;
  std::string mac;  // empty = 5A:FE + first VIP in hex
  int line = 0;
};

struct InterfaceConfig {
  bool check = true;  // generates the intf.<network> checker
  bool arpreroute = false;
  Millis arpinterval = std::chrono::seconds(60);  // implicit unit s
  Millis arpelapse = std::chrono::seconds(1200);  // implicit unit s
  std::string name;                               // NIC; empty = auto-detect
  // Farm: the <virtual_interface>; mirror: nullopt (the addresses sat in <real_interface>).
  std::optional<VirtualInterfaceConfig> virtual_interface;
  std::vector<VirtualAddrConfig> addrs;  // at least one
  int line = 0;
};

struct LbHostConfig {
  std::string name;  // a node of cluster.xml
  int power = 1;     // relative weight; 0 = no traffic
  int line = 0;
};

enum class LbProto { Tcp, Udp, Arp };
enum class LbFilter { OnAddr, OnPort, OnIpid };

struct LbRuleConfig {
  std::string virtual_addr = "*";  // "*" or one of the module's VIPs
  int port = 0;                    // 0 = "*" (any)
  LbProto proto = LbProto::Tcp;
  LbFilter filter = LbFilter::OnAddr;
  int line = 0;
};

struct LbGroupConfig {
  std::string name;
  std::vector<LbHostConfig> hosts;  // empty: no <cluster>, every farm node with power 1
  std::vector<LbRuleConfig> rules;  // at least one
  int line = 0;
};

struct VipConfig {
  bool tcpreset = true;
  bool scriptcontrol = false;               // farm only
  std::vector<InterfaceConfig> interfaces;  // at least one
  std::vector<LbGroupConfig> groups;        // farm only
  int line = 0;
};

}  // namespace halo::config
