#include "config/validate.h"

#include <set>

#include "base/strings.h"

namespace halo::config {
namespace {

Status invalidAt(const ModuleConfig& m, int line, std::string_view element, std::string_view attr,
                 std::string_view value, const std::string& expected) {
  return invalidArgument(m.file + ":" + std::to_string(line) + ": <" + std::string(element) +
                         "> attribute '" + std::string(attr) + "': invalid value '" +
                         std::string(value) + "' (expected " + expected + ")");
}

std::string lanNames(const ClusterConfig& c) {
  std::vector<std::string> names;
  for (const ClusterLan& lan : c.lans) {
    names.push_back(lan.name);
  }
  return join(names, ", ");
}

std::vector<std::string> nodesOf(const ClusterLan& lan) {
  std::vector<std::string> names;
  for (const ClusterNode& n : lan.nodes) {
    names.push_back(n.name);
  }
  return names;
}

// The lan named by a module element, or an error naming the lans that exist.
Result<const ClusterLan*> findLan(const ModuleConfig& m, const ClusterConfig& c,
                                  std::string_view element, const std::string& name, int line) {
  const ClusterLan* lan = c.findLan(name);
  if (lan == nullptr) {
    return invalidAt(m, line, element, "name", name, "a lan of cluster.xml: " + lanNames(c));
  }
  return lan;
}

Status validateMirror(const ModuleConfig& m, const ClusterConfig& c) {
  std::set<std::string> pair;  // the two mirror nodes, from the first heartbeat lan
  std::string pair_lan;
  auto checkLan = [&](std::string_view element, const std::string& name, int line) -> Status {
    HALO_ASSIGN_OR_RETURN(const ClusterLan* lan, findLan(m, c, element, name, line));
    const std::vector<std::string> nodes = nodesOf(*lan);
    if (nodes.size() != 2) {
      return invalidAt(m, line, element, "name", name,
                       "a lan of exactly 2 nodes for a mirror module; lan '" + name + "' has " +
                           std::to_string(nodes.size()) + ": " + join(nodes, ", "));
    }
    const std::set<std::string> these(nodes.begin(), nodes.end());
    if (pair.empty()) {
      pair = these;
      pair_lan = name;
    } else if (these != pair) {
      return invalidAt(m, line, element, "name", name,
                       "a lan joining the same two nodes as lan '" + pair_lan +
                           "': " + join({pair.begin(), pair.end()}, ", "));
    }
    return okStatus();
  };
  for (const HeartbeatConfig& hb : m.heart->heartbeats) {
    HALO_RETURN_IF_ERROR(checkLan("heartbeat", hb.name, hb.line));
  }
  if (m.rfs && !m.rfs->flow.empty()) {
    HALO_RETURN_IF_ERROR(checkLan("flow", m.rfs->flow, m.rfs->flow_line));
  }
  const std::string& prim = m.service.defaultprim;
  if (prim != "alone" && prim != "lastprim" && pair.count(prim) == 0) {
    return invalidAt(
        m, m.service.line, "service", "defaultprim", prim,
        "alone, lastprim or a node of the mirror: " + join({pair.begin(), pair.end()}, ", "));
  }
  return okStatus();
}

Status validateFarm(const ModuleConfig& m, const ClusterConfig& c) {
  std::vector<std::string> farm_nodes;
  std::set<std::string> seen;
  for (const FarmLanConfig& fl : m.farm->lans) {
    HALO_ASSIGN_OR_RETURN(const ClusterLan* lan, findLan(m, c, "lan", fl.name, fl.line));
    if (lan->nodes.size() < 2) {
      return invalidAt(m, fl.line, "lan", "name", fl.name,
                       "a lan of at least 2 nodes for a farm module; lan '" + fl.name + "' has 1");
    }
    for (const std::string& n : nodesOf(*lan)) {
      if (seen.insert(n).second) {
        farm_nodes.push_back(n);
      }
    }
  }
  if (!m.vip) {
    return okStatus();
  }
  for (const LbGroupConfig& g : m.vip->groups) {
    for (const LbHostConfig& h : g.hosts) {
      if (seen.count(h.name) == 0) {
        return invalidAt(m, h.line, "host", "name", h.name,
                         "a node of the farm: " + join(farm_nodes, ", "));
      }
    }
  }
  return okStatus();
}

}  // namespace

Status validateAgainstCluster(const ModuleConfig& m, const ClusterConfig& c) {
  switch (m.service.mode) {
    case Mode::Mirror:
      return m.heart ? validateMirror(m, c) : okStatus();
    case Mode::Farm:
      return m.farm ? validateFarm(m, c) : okStatus();
    case Mode::Light:
      return okStatus();
  }
  return okStatus();
}

}  // namespace halo::config
