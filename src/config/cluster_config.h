#pragma once
// cluster.xml (reference 3.1): the nodes of the cluster and the networks (lans) joining them.
// Parsing is pure: reading the named file is the only I/O.

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"

namespace halo::config {

struct ClusterNode {
  std::string name;   // unique logical node name, the same on every lan
  std::string addr;   // IPv4, IPv6 ("[2001:db8::1]" accepted) or DNS name, as others see it
  std::string laddr;  // local address behind NAT; empty when not given
  int line = 0;
};

struct ClusterLan {
  std::string name;
  // Carries distributed commands. Resolved at parse: when no lan says command="on", the first lan.
  bool command = false;
  std::vector<ClusterNode> nodes;
  int line = 0;

  const ClusterNode* findNode(std::string_view node_name) const;
};

struct ClusterConfig {
  std::string file;   // the name it was parsed under, for messages
  int port = 4800;    // <lans port>: node membership UDP port
  Millis pulse{100};  // <lans pulse>: implicit unit ms
  int mlost_count = 20;
  int slost_count = 10;
  std::vector<ClusterLan> lans;
  std::vector<std::string> warnings;  // ignored obsolete attributes (lan console/framework)
  int line = 0;                       // of <lans>

  // Every node name, in order of first appearance.
  std::vector<std::string> nodeNames() const;
  const ClusterLan* findLan(std::string_view name) const;
  const ClusterLan* commandLan() const;
};

Result<ClusterConfig> parseClusterConfig(std::string_view xml, const std::string& file_name);
Result<ClusterConfig> parseClusterConfigFile(const std::string& path);

namespace internal {
// Reads a whole file; the only I/O of this layer. NotFound / Internal with errno's text.
Result<std::string> readConfigFile(const std::string& path);
}  // namespace internal

}  // namespace halo::config
