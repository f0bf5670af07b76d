#pragma once
// The section parsers of userconfig.xml, one per <service> child (internal). Each validates its
// element completely, in document order, and returns the first error.

#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "config/module_config.h"
#include "config/xml_document.h"

namespace halo::config::internal {

struct ModuleParse {
  const XmlDocument& doc;
  Mode mode;
  std::vector<std::string>* warnings;

  // Records "<file>:<line>: <what>" for input that is accepted but ignored.
  void warn(pugi::xml_node node, const std::string& what) const;
  // "<x> is only allowed in a <allowed> module (this module is mode="light")".
  Status modeError(pugi::xml_node node, std::string_view allowed) const;
};

Result<HeartConfig> parseHeart(const ModuleParse& p, pugi::xml_node node);
Result<RfsConfig> parseRfs(const ModuleParse& p, pugi::xml_node node);
Result<FarmConfig> parseFarm(const ModuleParse& p, pugi::xml_node node);
Result<VipConfig> parseVip(const ModuleParse& p, pugi::xml_node node);
Result<UserConfig> parseUser(const ModuleParse& p, pugi::xml_node node);
Result<VhostConfig> parseVhost(const ModuleParse& p, pugi::xml_node node);
Result<ErrdConfig> parseErrd(const ModuleParse& p, pugi::xml_node node);
Result<CheckConfig> parseCheck(const ModuleParse& p, pugi::xml_node node);
Result<FailoverConfig> parseFailover(const ModuleParse& p, pugi::xml_node node);

}  // namespace halo::config::internal
