// userconfig.xml: the document, <macro>, <service> and the rules that span sections.
#include "config/module_config.h"

#include <map>

#include "config/cluster_config.h"
#include "config/element_reader.h"
#include "config/module_parser.h"
#include "config/values.h"

namespace halo::config {
namespace {

using internal::ElementReader;
using internal::ModuleParse;
using internal::XmlDocument;

bool isTopLevelMacro(pugi::xml_node n) {
  return std::string_view(n.name()) == "macro" && n.parent().parent().type() == pugi::node_document;
}

// Collects every top-level <macro> first, so a macro may be used before its definition. Macro
// values may use environment variables but not other macros: no order or cycle questions arise.
Status collectMacros(XmlDocument& doc, const Environment& env, ModuleConfig* m) {
  std::map<std::string, int> lines;
  std::vector<pugi::xml_node> nodes;
  for (pugi::xml_node n : doc.root().children("macro")) {
    ElementReader r(doc, n);
    HALO_RETURN_IF_ERROR(r.checkAttributes({"name", "value"}));
    HALO_RETURN_IF_ERROR(r.children({}).status());
    std::string name;
    HALO_RETURN_IF_ERROR(r.readRequired("name", &name));
    if (!isIdentifier(name)) {
      return r.invalidValue("name", name, "an identifier of letters, digits and _");
    }
    if (auto [it, fresh] = lines.emplace(name, r.line()); !fresh) {
      return r.invalidValue(
          "name", name, "a macro name not already defined at line " + std::to_string(it->second));
    }
    if (!r.has("value")) {
      return r.missing("value");
    }
    m->macros.emplace_back(name, *r.get("value"));
    nodes.push_back(n);
  }
  const MacroExpander env_only({}, env);
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::string& value = m->macros[i].second;
    Result<std::string> v = env_only.expand(value);
    if (!v.ok()) {
      std::string what = v.status().message() + " in attribute 'value'";
      for (const auto& [other, line] : lines) {
        if (value.find("%" + other + "%") != std::string::npos) {
          what += " (a macro value may use environment variables but not other macros)";
          break;
        }
      }
      return doc.error(nodes[i], what);
    }
    value = *v;
    nodes[i].attribute("value").set_value(value.c_str());
  }
  return okStatus();
}

Status checkMode(const ModuleParse& p, pugi::xml_node n) {
  const std::string_view name = n.name();
  if ((name == "heart" || name == "rfs") && p.mode != Mode::Mirror) {
    return p.modeError(n, "mirror");
  }
  if (name == "farm" && p.mode != Mode::Farm) {
    return p.modeError(n, "farm");
  }
  if (name == "vip" && p.mode == Mode::Light) {
    return p.modeError(n, "mirror or farm");
  }
  return okStatus();
}

Status parseSection(const ModuleParse& p, pugi::xml_node n, ModuleConfig* m) {
  const std::string_view name = n.name();
  auto store = [](auto result, auto* slot) -> Status {
    if (!result.ok()) {
      return result.status();
    }
    *slot = std::move(result).value();
    return okStatus();
  };
  if (name == "heart") {
    return store(internal::parseHeart(p, n), &m->heart);
  }
  if (name == "farm") {
    return store(internal::parseFarm(p, n), &m->farm);
  }
  if (name == "vip") {
    return store(internal::parseVip(p, n), &m->vip);
  }
  if (name == "rfs") {
    return store(internal::parseRfs(p, n), &m->rfs);
  }
  if (name == "user") {
    return store(internal::parseUser(p, n), &m->user);
  }
  if (name == "vhost") {
    return store(internal::parseVhost(p, n), &m->vhost);
  }
  if (name == "errd") {
    return store(internal::parseErrd(p, n), &m->errd);
  }
  if (name == "check") {
    return store(internal::parseCheck(p, n), &m->check);
  }
  return store(internal::parseFailover(p, n), &m->failover);
}

Status readServiceAttributes(const ElementReader& r, ModuleConfig* m) {
  ServiceConfig& s = m->service;
  HALO_RETURN_IF_ERROR(r.checkAttributes({"mode", "boot", "boot_delay", "failover", "defaultprim",
                                          "maxloop", "loop_interval", "automatic_reboot"}));
  if (!r.has("mode")) {
    return r.missing("mode");
  }
  HALO_RETURN_IF_ERROR(r.readEnum(
      "mode", &s.mode, {{"mirror", Mode::Mirror}, {"farm", Mode::Farm}, {"light", Mode::Light}}));
  HALO_RETURN_IF_ERROR(r.readEnum(
      "boot", &s.boot,
      {{"on", Boot::On}, {"off", Boot::Off}, {"auto", Boot::Auto}, {"ignore", Boot::Ignore}}));
  HALO_RETURN_IF_ERROR(r.readDuration("boot_delay", &s.boot_delay, "s", Millis(0)));
  HALO_RETURN_IF_ERROR(r.readSwitch("failover", &s.failover));
  if (r.has("failover") && s.mode != Mode::Mirror) {
    m->warnings.push_back(m->file + ":" + std::to_string(r.line()) +
                          ": <service> attribute 'failover' only applies to a mirror module and "
                          "is ignored");
  }
  if (r.has("defaultprim") && s.mode != Mode::Mirror) {
    return r.error(
        "<service> attribute 'defaultprim' is only allowed in a mirror module (this "
        "module is mode=\"" +
        std::string(modeName(s.mode)) + "\")");
  }
  HALO_RETURN_IF_ERROR(r.readString("defaultprim", &s.defaultprim));
  if (s.defaultprim != "alone" && s.defaultprim != "lastprim" &&
      !internal::isNodeName(s.defaultprim)) {
    return r.invalidValue("defaultprim", s.defaultprim,
                          "alone, lastprim or a node name of cluster.xml");
  }
  HALO_RETURN_IF_ERROR(r.readInt("maxloop", &s.maxloop, 0, INT32_MAX));
  HALO_RETURN_IF_ERROR(r.readDuration("loop_interval", &s.loop_interval, "h", Millis(0)));
  return r.readSwitch("automatic_reboot", &s.automatic_reboot);
}

Status parseService(const XmlDocument& doc, pugi::xml_node n, ModuleConfig* m) {
  ElementReader r(doc, n);
  m->service.line = r.line();
  HALO_RETURN_IF_ERROR(readServiceAttributes(r, m));
  HALO_ASSIGN_OR_RETURN(
      std::vector<pugi::xml_node> kids,
      r.children({"heart", "farm", "vip", "rfs", "user", "vhost", "errd", "check", "failover"}));
  const ModuleParse p{doc, m->service.mode, &m->warnings};
  std::map<std::string_view, pugi::xml_node> seen;
  for (pugi::xml_node k : kids) {
    if (auto [it, fresh] = seen.emplace(k.name(), k); !fresh) {
      return r.duplicateChild(k, it->second);
    }
    HALO_RETURN_IF_ERROR(checkMode(p, k));
    HALO_RETURN_IF_ERROR(parseSection(p, k, m));
  }
  const Mode mode = m->service.mode;
  if (mode == Mode::Mirror && !m->heart) {
    return r.error(
        "<service mode=\"mirror\"> has no <heart> (expected one, with a <heartbeat> "
        "per lan shared by the two nodes)");
  }
  if (mode == Mode::Farm && !m->farm) {
    return r.error(
        "<service mode=\"farm\"> has no <farm> (expected one, with the <lan> elements "
        "that carry farm membership)");
  }
  if (m->errd && !m->user) {
    return doc.error(seen["errd"],
                     "<errd> requires <user> in the same <service> (errd actions "
                     "run the module's scripts)");
  }
  if (m->heart && !m->rfs) {
    for (const HeartbeatConfig& hb : m->heart->heartbeats) {
      if (hb.ident == "flow") {
        p.warn(seen["heart"],
               "<heartbeat> ident \"flow\" names the replication network but the "
               "module has no <rfs>");
      }
    }
  }
  return okStatus();
}

}  // namespace

namespace internal {

void ModuleParse::warn(pugi::xml_node node, const std::string& what) const {
  warnings->push_back(doc.file() + ":" + std::to_string(doc.lineOf(node)) + ": " + what);
}

Status ModuleParse::modeError(pugi::xml_node node, std::string_view allowed) const {
  return doc.error(node, "<" + std::string(node.name()) + "> is only allowed in a " +
                             std::string(allowed) + " module (this module is mode=\"" +
                             modeName(mode) + "\")");
}

}  // namespace internal

const char* modeName(Mode mode) {
  switch (mode) {
    case Mode::Mirror:
      return "mirror";
    case Mode::Farm:
      return "farm";
    case Mode::Light:
      return "light";
  }
  return "unknown";
}

const char* bootName(Boot boot) {
  switch (boot) {
    case Boot::On:
      return "on";
    case Boot::Off:
      return "off";
    case Boot::Auto:
      return "auto";
    case Boot::Ignore:
      return "ignore";
  }
  return "unknown";
}

const char* checkWhenName(CheckWhen when) {
  switch (when) {
    case CheckWhen::Pre:
      return "pre";
    case CheckWhen::Prim:
      return "prim";
    case CheckWhen::Second:
      return "second";
    case CheckWhen::Both:
      return "both";
  }
  return "unknown";
}

const char* checkActionName(CheckAction action) {
  switch (action) {
    case CheckAction::Stop:
      return "stop";
    case CheckAction::Stopstart:
      return "stopstart";
    case CheckAction::Restart:
      return "restart";
    case CheckAction::Wait:
      return "wait";
    case CheckAction::Noaction:
      return "noaction";
  }
  return "unknown";
}

std::string ModuleConfig::flowLan() const {
  if (rfs && !rfs->flow.empty()) {
    return rfs->flow;
  }
  if (!heart || heart->heartbeats.empty()) {
    return "";
  }
  for (const HeartbeatConfig& hb : heart->heartbeats) {
    if (hb.ident == "flow") {
      return hb.name;
    }
  }
  return heart->heartbeats.front().name;
}

Result<ModuleConfig> parseModuleConfig(std::string_view xml, const std::string& file_name,
                                       const Environment& env) {
  HALO_ASSIGN_OR_RETURN(std::unique_ptr<XmlDocument> doc,
                        XmlDocument::load(xml, file_name, "safe"));
  ModuleConfig m;
  m.file = file_name;
  ElementReader root(*doc, doc->root());
  HALO_RETURN_IF_ERROR(root.checkAttributes({}));
  HALO_RETURN_IF_ERROR(collectMacros(*doc, env, &m));
  HALO_RETURN_IF_ERROR(doc->expandMacros(MacroExpander(m.macros, env), isTopLevelMacro));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, root.children({"macro", "service"}));
  pugi::xml_node service;
  for (pugi::xml_node k : kids) {
    if (std::string_view(k.name()) != "service") {
      continue;
    }
    if (service) {
      return root.duplicateChild(k, service);
    }
    service = k;
    HALO_RETURN_IF_ERROR(parseService(*doc, k, &m));
  }
  if (!service) {
    return root.error("<safe> has no <service> (expected exactly one)");
  }
  m.expanded_xml = doc->serialize();
  return m;
}

Result<ModuleConfig> parseModuleConfigFile(const std::string& path, const Environment& env) {
  HALO_ASSIGN_OR_RETURN(std::string text, internal::readConfigFile(path));
  return parseModuleConfig(text, path, env);
}

}  // namespace halo::config
