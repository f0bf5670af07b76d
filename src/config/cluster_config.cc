#include "config/cluster_config.h"

#include <cerrno>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "config/element_reader.h"
#include "config/values.h"

namespace halo::config {
namespace {

using internal::ElementReader;
using internal::XmlDocument;

Status parseNode(const XmlDocument& doc, pugi::xml_node n, ClusterNode* node) {
  ElementReader r(doc, n);
  node->line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"name", "addr", "laddr"}));
  HALO_RETURN_IF_ERROR(r.children({}).status());
  HALO_RETURN_IF_ERROR(r.readRequired("name", &node->name));
  if (!internal::isNodeName(node->name)) {
    return r.invalidValue("name", node->name, "a node name of letters, digits, '_', '-' and '.'");
  }
  HALO_RETURN_IF_ERROR(r.readRequired("addr", &node->addr));
  if (!internal::isIpOrHostName(node->addr, /*allow_brackets=*/true)) {
    return r.invalidValue("addr", node->addr, "an IPv4 or IPv6 address or a host name");
  }
  HALO_RETURN_IF_ERROR(r.readString("laddr", &node->laddr));
  if (!node->laddr.empty() && !internal::isIpAddress(node->laddr, /*allow_brackets=*/true)) {
    return r.invalidValue("laddr", node->laddr, "an IPv4 or IPv6 address");
  }
  return okStatus();
}

Status parseLan(const XmlDocument& doc, pugi::xml_node n, ClusterConfig* cfg, ClusterLan* lan,
                bool* explicit_command) {
  ElementReader r(doc, n);
  lan->line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"name", "command", "console", "framework"}));
  HALO_RETURN_IF_ERROR(r.readRequired("name", &lan->name));
  if (!internal::isResourceIdent(lan->name)) {
    return r.invalidValue("name", lan->name, "a name of letters, digits and _ - . : @");
  }
  HALO_RETURN_IF_ERROR(r.readSwitch("command", &lan->command));
  *explicit_command = r.has("command");
  for (std::string_view obsolete : {"console", "framework"}) {
    if (r.has(obsolete)) {
      cfg->warnings.push_back(doc.file() + ":" + std::to_string(r.line()) + ": <lan> attribute '" +
                              std::string(obsolete) +
                              "' is obsolete since SafeKit 8.2 and ignored");
    }
  }
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"node"}));
  std::map<std::string, int> names;
  std::map<std::string, int> addrs;
  for (pugi::xml_node k : kids) {
    ClusterNode node;
    HALO_RETURN_IF_ERROR(parseNode(doc, k, &node));
    ElementReader nr(doc, k);
    if (auto [it, fresh] = names.emplace(node.name, node.line); !fresh) {
      return nr.invalidValue("name", node.name,
                             "a node name not already used in lan '" + lan->name + "' at line " +
                                 std::to_string(it->second));
    }
    if (auto [it, fresh] = addrs.emplace(node.addr, node.line); !fresh) {
      return nr.invalidValue("addr", node.addr,
                             "an address not already used in lan '" + lan->name + "' at line " +
                                 std::to_string(it->second));
    }
    lan->nodes.push_back(std::move(node));
  }
  if (lan->nodes.empty()) {
    return r.error("<lan> '" + lan->name + "' has no <node> (expected at least one)");
  }
  return okStatus();
}

Status errorAt(const std::string& file, int line, const std::string& what) {
  return invalidArgument(file + ":" + std::to_string(line) + ": " + what);
}

Status parseLans(const XmlDocument& doc, pugi::xml_node n, ClusterConfig* cfg) {
  ElementReader r(doc, n);
  cfg->line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"port", "pulse", "mlost_count", "slost_count"}));
  HALO_RETURN_IF_ERROR(r.readPort("port", &cfg->port));
  HALO_RETURN_IF_ERROR(r.readDuration("pulse", &cfg->pulse, "ms", Millis(1)));
  HALO_RETURN_IF_ERROR(r.readInt("mlost_count", &cfg->mlost_count, 1, 100000));
  HALO_RETURN_IF_ERROR(r.readInt("slost_count", &cfg->slost_count, 1, 100000));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"lan"}));
  std::map<std::string, int> names;
  std::vector<bool> explicit_off;
  int command = -1;
  for (pugi::xml_node k : kids) {
    ClusterLan lan;
    bool explicit_command = false;
    HALO_RETURN_IF_ERROR(parseLan(doc, k, cfg, &lan, &explicit_command));
    ElementReader lr(doc, k);
    if (auto [it, fresh] = names.emplace(lan.name, lan.line); !fresh) {
      return lr.invalidValue("name", lan.name,
                             "a lan name not already used at line " + std::to_string(it->second));
    }
    if (lan.command) {
      if (command >= 0) {
        return lr.invalidValue("command", "on",
                               "off: only one lan may carry commands and lan '" +
                                   cfg->lans[command].name + "' already does");
      }
      command = static_cast<int>(cfg->lans.size());
    }
    explicit_off.push_back(explicit_command && !lan.command);
    cfg->lans.push_back(std::move(lan));
  }
  if (cfg->lans.empty()) {
    return r.error("<lans> has no <lan> (expected at least one)");
  }
  // Without an explicit choice the first lan carries commands (reference 3.1).
  for (size_t i = 0; command < 0 && i < cfg->lans.size(); ++i) {
    if (!explicit_off[i]) {
      command = static_cast<int>(i);
    }
  }
  if (command < 0) {
    return r.error("<lans>: every <lan> has command=\"off\" (expected one lan to carry commands)");
  }
  ClusterLan& lan = cfg->lans[command];
  lan.command = true;
  // Distributed commands reach every node only if the command lan holds them all.
  for (const std::string& name : cfg->nodeNames()) {
    if (lan.findNode(name) == nullptr) {
      return errorAt(doc.file(), lan.line,
                     "<lan> '" + lan.name + "' carries commands but lacks node '" + name +
                         "' (the command lan must include every node)");
    }
  }
  return okStatus();
}

}  // namespace

const ClusterNode* ClusterLan::findNode(std::string_view node_name) const {
  for (const ClusterNode& n : nodes) {
    if (n.name == node_name) {
      return &n;
    }
  }
  return nullptr;
}

std::vector<std::string> ClusterConfig::nodeNames() const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const ClusterLan& lan : lans) {
    for (const ClusterNode& n : lan.nodes) {
      if (seen.insert(n.name).second) {
        out.push_back(n.name);
      }
    }
  }
  return out;
}

const ClusterLan* ClusterConfig::findLan(std::string_view name) const {
  for (const ClusterLan& lan : lans) {
    if (lan.name == name) {
      return &lan;
    }
  }
  return nullptr;
}

const ClusterLan* ClusterConfig::commandLan() const {
  for (const ClusterLan& lan : lans) {
    if (lan.command) {
      return &lan;
    }
  }
  return nullptr;
}

Result<ClusterConfig> parseClusterConfig(std::string_view xml, const std::string& file_name) {
  HALO_ASSIGN_OR_RETURN(std::unique_ptr<XmlDocument> doc,
                        XmlDocument::load(xml, file_name, "cluster"));
  ClusterConfig cfg;
  cfg.file = file_name;
  ElementReader root(*doc, doc->root());
  HALO_RETURN_IF_ERROR(root.checkAttributes({}));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, root.children({"lans"}));
  if (kids.empty()) {
    return root.error("<cluster> has no <lans> (expected exactly one)");
  }
  if (kids.size() > 1) {
    return root.duplicateChild(kids[1], kids[0]);
  }
  HALO_RETURN_IF_ERROR(parseLans(*doc, kids[0], &cfg));
  return cfg;
}

Result<ClusterConfig> parseClusterConfigFile(const std::string& path) {
  HALO_ASSIGN_OR_RETURN(std::string text, internal::readConfigFile(path));
  return parseClusterConfig(text, path);
}

namespace internal {

Result<std::string> readConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return errnoStatus("open " + path, errno);
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) {
    return errnoStatus("read " + path, errno);
  }
  return out.str();
}

}  // namespace internal

}  // namespace halo::config
