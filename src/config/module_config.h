#pragma once
// userconfig.xml (reference 3.2): one module's configuration, parsed and validated into an
// immutable value. Pure: reading the named file is the only I/O.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "config/check_config.h"
#include "config/macros.h"
#include "config/mirror_config.h"
#include "config/service_config.h"
#include "config/user_config.h"
#include "config/vip_config.h"

namespace halo::config {

struct ModuleConfig {
  std::string file;  // the name it was parsed under, for messages
  std::vector<std::pair<std::string, std::string>> macros;  // in document order, values expanded
  ServiceConfig service;
  std::optional<HeartConfig> heart;  // always present in a mirror module
  std::optional<FarmConfig> farm;    // always present in a farm module
  std::optional<VipConfig> vip;
  std::optional<RfsConfig> rfs;
  std::optional<UserConfig> user;
  std::optional<VhostConfig> vhost;
  std::optional<ErrdConfig> errd;
  std::optional<CheckConfig> check;
  std::optional<FailoverConfig> failover;
  // "<file>:<line>: ..." notes about accepted but ignored input (legacy attributes).
  std::vector<std::string> warnings;
  std::string expanded_xml;  // the document after macro expansion (written as safeconf.xml)

  // The lan that carries replication: <rfs><flow>, else the heartbeat with ident "flow", else
  // the first heartbeat; empty without <heart>.
  std::string flowLan() const;
};

// Errors name `file_name` and the 1-based line: "<file>:<line>: ..." (see docs/configuration.md).
Result<ModuleConfig> parseModuleConfig(std::string_view xml, const std::string& file_name,
                                       const Environment& env);
Result<ModuleConfig> parseModuleConfigFile(const std::string& path, const Environment& env);

}  // namespace halo::config
