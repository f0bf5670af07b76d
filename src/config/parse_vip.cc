// <farm> membership and <vip> addresses / load balancing.
#include <map>
#include <set>

#include "config/element_reader.h"
#include "config/module_parser.h"
#include "config/values.h"

namespace halo::config::internal {
namespace {

constexpr std::string_view kLegacyNode =
    "legacy syntax not supported, use <lan name=...> naming a lan of cluster.xml";

struct VipParse {
  const ModuleParse& p;
  std::map<std::string, int> addrs;  // every VIP of the module -> line, to refuse duplicates
};

Status parseVirtualAddr(VipParse& v, pugi::xml_node n, VirtualAddrConfig* out) {
  ElementReader r(v.p.doc, n);
  out->line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"addr", "where", "check", "connections", "netmask"}));
  HALO_RETURN_IF_ERROR(r.children({}).status());
  HALO_RETURN_IF_ERROR(r.readRequired("addr", &out->addr));
  HALO_RETURN_IF_ERROR(r.readIpOrHost("addr", &out->addr));
  if (auto [it, fresh] = v.addrs.emplace(out->addr, out->line); !fresh) {
    return r.invalidValue("addr", out->addr,
                          "an address not already declared at line " + std::to_string(it->second));
  }
  if (v.p.mode == Mode::Farm) {
    out->where = VipWhere::Alias;
    HALO_RETURN_IF_ERROR(r.readEnum("where", &out->where, {{"alias", VipWhere::Alias}}));
  } else {
    out->where = VipWhere::OneSideAlias;
    HALO_RETURN_IF_ERROR(
        r.readEnum("where", &out->where,
                   {{"one_side_alias", VipWhere::OneSideAlias}, {"one_side", VipWhere::OneSide}}));
  }
  HALO_RETURN_IF_ERROR(r.readSwitch("check", &out->check));
  HALO_RETURN_IF_ERROR(r.readSwitch("connections", &out->connections));
  HALO_RETURN_IF_ERROR(r.readString("netmask", &out->netmask));
  if (!out->netmask.empty() && !isNetmask(out->netmask)) {
    return r.invalidValue("netmask", out->netmask,
                          "a dotted IPv4 netmask such as 255.255.255.0 or a prefix length");
  }
  return okStatus();
}

// The <virtual_addr> children of a <real_interface> or <virtual_interface>.
Status parseAddrList(VipParse& v, const ElementReader& r, std::vector<VirtualAddrConfig>* out) {
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"virtual_addr"}));
  for (pugi::xml_node k : kids) {
    VirtualAddrConfig a;
    HALO_RETURN_IF_ERROR(parseVirtualAddr(v, k, &a));
    out->push_back(std::move(a));
  }
  if (out->empty()) {
    return r.error(r.tag() + " has no <virtual_addr> (expected at least one)");
  }
  return okStatus();
}

Status parseInterface(VipParse& v, pugi::xml_node n, InterfaceConfig* out) {
  ElementReader r(v.p.doc, n);
  out->line = r.line();
  HALO_RETURN_IF_ERROR(
      r.checkAttributes({"check", "arpreroute", "arpinterval", "arpelapse", "name"}));
  HALO_RETURN_IF_ERROR(r.readSwitch("check", &out->check));
  HALO_RETURN_IF_ERROR(r.readSwitch("arpreroute", &out->arpreroute));
  HALO_RETURN_IF_ERROR(r.readDuration("arpinterval", &out->arpinterval, "s", Millis(1000)));
  HALO_RETURN_IF_ERROR(r.readDuration("arpelapse", &out->arpelapse, "s", Millis(0)));
  HALO_RETURN_IF_ERROR(r.readString("name", &out->name));
  if (!out->name.empty() && !isInterfaceName(out->name)) {
    return r.invalidValue("name", out->name, "a network interface name of 1 to 15 characters");
  }
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids,
                        r.children({"real_interface", "virtual_interface"}));
  const bool farm = v.p.mode == Mode::Farm;
  const std::string_view wanted = farm ? "virtual_interface" : "real_interface";
  pugi::xml_node first;
  for (pugi::xml_node k : kids) {
    if (std::string_view(k.name()) != wanted) {
      return v.p.modeError(k, farm ? "mirror" : "farm");
    }
    if (first) {
      return r.duplicateChild(k, first);
    }
    first = k;
    ElementReader kr(v.p.doc, k);
    if (farm) {
      VirtualInterfaceConfig vi;
      vi.line = kr.line();
      HALO_RETURN_IF_ERROR(kr.checkAttributes({"type", "addr"}));
      HALO_RETURN_IF_ERROR(kr.readEnum(
          "type", &vi.type,
          {{"vmac_directed", VmacType::Directed}, {"vmac_invisible", VmacType::Invisible}}));
      HALO_RETURN_IF_ERROR(kr.readString("addr", &vi.mac));
      if (!vi.mac.empty() && !isMacAddress(vi.mac)) {
        return kr.invalidValue("addr", vi.mac, "a MAC address such as 5A:FE:C0:A8:01:DE");
      }
      out->virtual_interface = vi;
    } else {
      HALO_RETURN_IF_ERROR(kr.checkAttributes({}));
    }
    HALO_RETURN_IF_ERROR(parseAddrList(v, kr, &out->addrs));
  }
  if (!first) {
    return r.error("<interface> has no <" + std::string(wanted) +
                   "> (expected one holding the <virtual_addr> elements)");
  }
  return okStatus();
}

Status parseRule(const ModuleParse& p, pugi::xml_node n, LbRuleConfig* out) {
  ElementReader r(p.doc, n);
  out->line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"virtual_addr", "port", "proto", "filter"}));
  HALO_RETURN_IF_ERROR(r.children({}).status());
  HALO_RETURN_IF_ERROR(r.readString("virtual_addr", &out->virtual_addr));
  if (out->virtual_addr != "*" && !isIpOrHostName(out->virtual_addr)) {
    return r.invalidValue("virtual_addr", out->virtual_addr,
                          "* or a <virtual_addr> of this module");
  }
  if (r.has("port") && *r.get("port") != "*") {
    HALO_RETURN_IF_ERROR(r.readPort("port", &out->port));
  }
  if (!r.has("proto")) {
    return r.missing("proto");
  }
  HALO_RETURN_IF_ERROR(r.readEnum(
      "proto", &out->proto, {{"tcp", LbProto::Tcp}, {"udp", LbProto::Udp}, {"arp", LbProto::Arp}}));
  if (!r.has("filter")) {
    return r.missing("filter");
  }
  HALO_RETURN_IF_ERROR(r.readEnum("filter", &out->filter,
                                  {{"on_addr", LbFilter::OnAddr},
                                   {"on_port", LbFilter::OnPort},
                                   {"on_ipid", LbFilter::OnIpid}}));
  // ARP replies can only be spread by requester address (reference 3.2.6).
  if (out->proto == LbProto::Arp && out->filter != LbFilter::OnAddr) {
    return r.invalidValue("filter", *r.get("filter"), "on_addr with proto=\"arp\"");
  }
  if (out->proto == LbProto::Tcp && out->filter == LbFilter::OnIpid) {
    p.warn(n,
           "<rule> filter=\"on_ipid\" is meaningless for TCP (every packet of a connection "
           "would hash differently); use on_addr or on_port");
  }
  return okStatus();
}

Status parseGroup(const ModuleParse& p, pugi::xml_node n, LbGroupConfig* out) {
  ElementReader r(p.doc, n);
  out->line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"name"}));
  HALO_RETURN_IF_ERROR(r.readRequired("name", &out->name));
  HALO_RETURN_IF_ERROR(r.readIdent("name", &out->name));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"cluster", "rule"}));
  pugi::xml_node cluster;
  for (pugi::xml_node k : kids) {
    ElementReader kr(p.doc, k);
    if (std::string_view(k.name()) == "rule") {
      LbRuleConfig rule;
      HALO_RETURN_IF_ERROR(parseRule(p, k, &rule));
      out->rules.push_back(std::move(rule));
      continue;
    }
    if (cluster) {
      return r.duplicateChild(k, cluster);
    }
    cluster = k;
    HALO_RETURN_IF_ERROR(kr.checkAttributes({}));
    HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> hosts, kr.children({"host"}));
    std::map<std::string, int> names;
    for (pugi::xml_node h : hosts) {
      ElementReader hr(p.doc, h);
      LbHostConfig host;
      host.line = hr.line();
      HALO_RETURN_IF_ERROR(hr.checkAttributes({"name", "power"}));
      HALO_RETURN_IF_ERROR(hr.children({}).status());
      HALO_RETURN_IF_ERROR(hr.readRequired("name", &host.name));
      if (!isNodeName(host.name)) {
        return hr.invalidValue("name", host.name, "a node name of cluster.xml");
      }
      HALO_RETURN_IF_ERROR(hr.readInt("power", &host.power, 0, INT32_MAX));
      if (auto [it, fresh] = names.emplace(host.name, host.line); !fresh) {
        return hr.invalidValue("name", host.name,
                               "a node not already listed at line " + std::to_string(it->second));
      }
      out->hosts.push_back(std::move(host));
    }
    if (out->hosts.empty()) {
      return kr.error(
          "<cluster> has no <host> (expected at least one; omit <cluster> to use "
          "every farm node)");
    }
  }
  if (out->rules.empty()) {
    return r.error("<group> has no <rule> (expected at least one)");
  }
  return okStatus();
}

}  // namespace

Result<FarmConfig> parseFarm(const ModuleParse& p, pugi::xml_node node) {
  ElementReader r(p.doc, node);
  FarmConfig farm;
  farm.line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"port", "pulse", "mlost_count", "slost_count"}));
  HALO_RETURN_IF_ERROR(r.readPort("port", &farm.port));
  HALO_RETURN_IF_ERROR(r.readDuration("pulse", &farm.pulse, "ms", Millis(1)));
  HALO_RETURN_IF_ERROR(r.readInt("mlost_count", &farm.mlost_count, 1, 100000));
  HALO_RETURN_IF_ERROR(r.readInt("slost_count", &farm.slost_count, 1, 100000));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids,
                        r.children({"lan"}, {{"node", kLegacyNode}}));
  std::map<std::string, int> names;
  for (pugi::xml_node k : kids) {
    ElementReader lr(p.doc, k);
    FarmLanConfig lan;
    lan.line = lr.line();
    HALO_RETURN_IF_ERROR(lr.checkAttributes({"name"}));
    HALO_RETURN_IF_ERROR(lr.children({}).status());
    HALO_RETURN_IF_ERROR(lr.readRequired("name", &lan.name));
    if (auto [it, fresh] = names.emplace(lan.name, lan.line); !fresh) {
      return lr.invalidValue("name", lan.name,
                             "a lan not already listed at line " + std::to_string(it->second));
    }
    farm.lans.push_back(std::move(lan));
  }
  if (farm.lans.empty()) {
    return r.error("<farm> has no <lan> (expected at least one, naming a lan of cluster.xml)");
  }
  return farm;
}

Result<VipConfig> parseVip(const ModuleParse& p, pugi::xml_node node) {
  ElementReader r(p.doc, node);
  VipConfig vip;
  vip.line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"tcpreset", "scriptcontrol"}));
  HALO_RETURN_IF_ERROR(r.readSwitch("tcpreset", &vip.tcpreset));
  HALO_RETURN_IF_ERROR(r.readSwitch("scriptcontrol", &vip.scriptcontrol));
  if (r.has("scriptcontrol") && p.mode != Mode::Farm) {
    p.warn(node, "<vip> attribute 'scriptcontrol' only applies to a farm module and is ignored");
  }
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids,
                        r.children({"interface_list", "loadbalancing_list"}));
  VipParse v{p, {}};
  pugi::xml_node interfaces;
  pugi::xml_node balancing;
  for (pugi::xml_node k : kids) {
    ElementReader kr(p.doc, k);
    HALO_RETURN_IF_ERROR(kr.checkAttributes({}));
    if (std::string_view(k.name()) == "interface_list") {
      if (interfaces) {
        return r.duplicateChild(k, interfaces);
      }
      interfaces = k;
      HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> list, kr.children({"interface"}));
      for (pugi::xml_node i : list) {
        InterfaceConfig intf;
        HALO_RETURN_IF_ERROR(parseInterface(v, i, &intf));
        vip.interfaces.push_back(std::move(intf));
      }
      if (vip.interfaces.empty()) {
        return kr.error("<interface_list> has no <interface> (expected at least one)");
      }
      continue;
    }
    if (p.mode != Mode::Farm) {
      return p.modeError(k, "farm");
    }
    if (balancing) {
      return r.duplicateChild(k, balancing);
    }
    balancing = k;
    HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> groups, kr.children({"group"}));
    std::map<std::string, int> names;
    for (pugi::xml_node g : groups) {
      LbGroupConfig group;
      HALO_RETURN_IF_ERROR(parseGroup(p, g, &group));
      if (auto [it, fresh] = names.emplace(group.name, group.line); !fresh) {
        return ElementReader(p.doc, g).invalidValue(
            "name", group.name,
            "a group name not already used at line " + std::to_string(it->second));
      }
      vip.groups.push_back(std::move(group));
    }
    if (vip.groups.empty()) {
      return kr.error("<loadbalancing_list> has no <group> (expected at least one)");
    }
  }
  if (!interfaces) {
    return r.error("<vip> has no <interface_list> (expected one holding the virtual addresses)");
  }
  // Rules may precede the addresses in the document, so they are matched once both are known.
  for (const LbGroupConfig& g : vip.groups) {
    for (const LbRuleConfig& rule : g.rules) {
      if (rule.virtual_addr != "*" && v.addrs.count(rule.virtual_addr) == 0) {
        return invalidArgument(p.doc.file() + ":" + std::to_string(rule.line) +
                               ": <rule> attribute 'virtual_addr': invalid value '" +
                               rule.virtual_addr +
                               "' (expected * or a <virtual_addr> of this "
                               "module)");
      }
    }
  }
  if (p.mode == Mode::Farm && vip.groups.empty() && !vip.scriptcontrol) {
    p.warn(node,
           "<vip> has no <loadbalancing_list>: the farm filter drops all traffic to the "
           "virtual addresses");
  }
  return vip;
}

}  // namespace halo::config::internal
