// <check>: tcp, ping, intf, ip, custom, module and splitbrain checkers.
#include <map>

#include "base/strings.h"
#include "config/element_reader.h"
#include "config/module_parser.h"
#include "config/values.h"

namespace halo::config::internal {
namespace {

// Reads "when". Farm and light modules have no prim/second states, so only pre and both apply.
Status readWhen(const ModuleParse& p, const ElementReader& r, CheckWhen* out, bool prim_ok = true,
                bool second_ok = true) {
  std::optional<std::string> v = r.get("when");
  if (!v) {
    return okStatus();
  }
  const bool mirror = p.mode == Mode::Mirror;
  std::vector<std::pair<std::string_view, CheckWhen>> allowed = {{"pre", CheckWhen::Pre}};
  if (mirror && prim_ok) {
    allowed.emplace_back("prim", CheckWhen::Prim);
  }
  if (mirror && second_ok) {
    allowed.emplace_back("second", CheckWhen::Second);
  }
  allowed.emplace_back("both", CheckWhen::Both);
  std::string names;
  for (const auto& [name, value] : allowed) {
    if (*v == name) {
      *out = value;
      return okStatus();
    }
    names += names.empty() ? "" : ", ";
    names += name;
  }
  std::string expected = "one of: " + names;
  if (!mirror && (*v == "prim" || *v == "second")) {
    expected += "; a " + std::string(modeName(p.mode)) + " module has no prim or second state";
  }
  return r.invalidValue("when", *v, expected);
}

Status readAction(const ElementReader& r, CheckAction* out) {
  return r.readEnum("action", out,
                    {{"stop", CheckAction::Stop},
                     {"stopstart", CheckAction::Stopstart},
                     {"restart", CheckAction::Restart},
                     {"wait", CheckAction::Wait},
                     {"noaction", CheckAction::Noaction}});
}

// The single <to> child of a checker; `required` false allows none.
Result<pugi::xml_node> singleTo(const ElementReader& r, bool required) {
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"to"}));
  if (kids.size() > 1) {
    return r.duplicateChild(kids[1], kids[0]);
  }
  if (kids.empty()) {
    if (required) {
      return r.error(r.tag() + " has no <to> (expected exactly one)");
    }
    return pugi::xml_node();
  }
  return kids[0];
}

Status readIdentRequired(const ElementReader& r, std::string* out) {
  HALO_RETURN_IF_ERROR(r.readRequired("ident", out));
  return r.readIdent("ident", out);
}

// Checkers of one class share the resource namespace <class>.<ident>.
Status claimIdent(const ElementReader& r, std::map<std::string, int>* idents,
                  const std::string& ident) {
  auto [it, fresh] = idents->emplace(ident, r.line());
  if (fresh) {
    return okStatus();
  }
  return r.invalidValue(
      r.has("ident") ? "ident" : "name", ident,
      "an ident not already used by the " + r.tag() + " at line " + std::to_string(it->second));
}

CheckWhen defaultWhen(const ModuleParse& p) {
  return p.mode == Mode::Mirror ? CheckWhen::Prim : CheckWhen::Both;
}

Status parseTcp(const ModuleParse& p, const ElementReader& r, TcpChecker* c) {
  HALO_RETURN_IF_ERROR(r.checkAttributes({"ident", "when", "action"}));
  HALO_RETURN_IF_ERROR(readIdentRequired(r, &c->ident));
  c->when = defaultWhen(p);
  HALO_RETURN_IF_ERROR(readWhen(p, r, &c->when));
  c->action = c->when == CheckWhen::Pre ? CheckAction::Wait : CheckAction::Restart;
  HALO_RETURN_IF_ERROR(readAction(r, &c->action));
  HALO_ASSIGN_OR_RETURN(pugi::xml_node to, singleTo(r, true));
  ElementReader t(p.doc, to);
  HALO_RETURN_IF_ERROR(t.checkAttributes({"addr", "port", "interval", "timeout"}));
  HALO_RETURN_IF_ERROR(t.children({}).status());
  HALO_RETURN_IF_ERROR(t.readRequired("addr", &c->addr));
  HALO_RETURN_IF_ERROR(t.readIpOrHost("addr", &c->addr));
  if (!t.has("port")) {
    return t.missing("port");
  }
  HALO_RETURN_IF_ERROR(t.readPort("port", &c->port));
  HALO_RETURN_IF_ERROR(t.readDuration("interval", &c->interval, "s", Millis(1000)));
  return t.readDuration("timeout", &c->timeout, "s", Millis(1000));
}

Status parsePing(const ModuleParse& p, const ElementReader& r, PingChecker* c) {
  HALO_RETURN_IF_ERROR(r.checkAttributes({"ident", "when", "action"}));
  HALO_RETURN_IF_ERROR(readIdentRequired(r, &c->ident));
  HALO_RETURN_IF_ERROR(readWhen(p, r, &c->when));
  c->action = c->when == CheckWhen::Pre ? CheckAction::Wait : CheckAction::Restart;
  HALO_RETURN_IF_ERROR(readAction(r, &c->action));
  HALO_ASSIGN_OR_RETURN(pugi::xml_node to, singleTo(r, true));
  ElementReader t(p.doc, to);
  HALO_RETURN_IF_ERROR(t.checkAttributes({"addr", "interval", "timeout"}));
  HALO_RETURN_IF_ERROR(t.children({}).status());
  HALO_RETURN_IF_ERROR(t.readRequired("addr", &c->addr));
  HALO_RETURN_IF_ERROR(t.readIpOrHost("addr", &c->addr));
  HALO_RETURN_IF_ERROR(t.readDuration("interval", &c->interval, "s", Millis(1000)));
  return t.readDuration("timeout", &c->timeout, "s", Millis(1000));
}

Status parseIntf(const ModuleParse& p, const ElementReader& r, IntfChecker* c) {
  HALO_RETURN_IF_ERROR(r.checkAttributes({"ident", "when"}));
  HALO_RETURN_IF_ERROR(readIdentRequired(r, &c->ident));
  HALO_RETURN_IF_ERROR(readWhen(p, r, &c->when));
  HALO_ASSIGN_OR_RETURN(pugi::xml_node to, singleTo(r, true));
  ElementReader t(p.doc, to);
  HALO_RETURN_IF_ERROR(t.checkAttributes({"local_addr"}));
  HALO_RETURN_IF_ERROR(t.children({}).status());
  HALO_RETURN_IF_ERROR(t.readRequired("local_addr", &c->local_addr));
  return t.readIp("local_addr", &c->local_addr);
}

Status parseIp(const ModuleParse& p, const ElementReader& r, IpChecker* c) {
  HALO_RETURN_IF_ERROR(r.checkAttributes({"ident", "when"}));
  HALO_RETURN_IF_ERROR(readIdentRequired(r, &c->ident));
  c->when = defaultWhen(p);
  HALO_RETURN_IF_ERROR(readWhen(p, r, &c->when, /*prim_ok=*/true, /*second_ok=*/false));
  if (c->when == CheckWhen::Pre) {
    // A VIP is only configured once the module is running on this node.
    return r.invalidValue("when", "pre", p.mode == Mode::Mirror ? "one of: prim, both" : "both");
  }
  HALO_ASSIGN_OR_RETURN(pugi::xml_node to, singleTo(r, true));
  ElementReader t(p.doc, to);
  HALO_RETURN_IF_ERROR(t.checkAttributes({"addr", "interval"}));
  HALO_RETURN_IF_ERROR(t.children({}).status());
  HALO_RETURN_IF_ERROR(t.readRequired("addr", &c->addr));
  HALO_RETURN_IF_ERROR(t.readIp("addr", &c->addr));
  return t.readDuration("interval", &c->interval, "s", Millis(1000));
}

Status parseCustom(const ModuleParse& p, const ElementReader& r, CustomChecker* c) {
  HALO_RETURN_IF_ERROR(r.checkAttributes({"ident", "when", "exec", "arg", "action"}));
  HALO_RETURN_IF_ERROR(r.children({}).status());
  HALO_RETURN_IF_ERROR(readIdentRequired(r, &c->ident));
  c->when = defaultWhen(p);
  HALO_RETURN_IF_ERROR(readWhen(p, r, &c->when));
  HALO_RETURN_IF_ERROR(r.readRequired("exec", &c->exec));
  if (c->exec.find('\0') != std::string::npos || trim(c->exec) != c->exec) {
    return r.invalidValue("exec", c->exec,
                          "a program path, absolute or relative to the module's bin");
  }
  if (std::optional<std::string> arg = r.get("arg")) {
    c->arg = *arg;
  }
  return readAction(r, &c->action);
}

Status parseModule(const ModuleParse& p, const ElementReader& r, ModuleChecker* c) {
  HALO_RETURN_IF_ERROR(r.checkAttributes({"ident", "name"}));
  HALO_RETURN_IF_ERROR(r.readRequired("name", &c->name));
  if (!isValidModuleName(c->name)) {
    return r.invalidValue("name", c->name,
                          "a module name (a letter, then letters, digits, _ or -)");
  }
  HALO_ASSIGN_OR_RETURN(pugi::xml_node to, singleTo(r, false));
  if (to) {
    ElementReader t(p.doc, to);
    c->remote = true;
    HALO_RETURN_IF_ERROR(t.checkAttributes({"addr", "port", "interval", "timeout", "secure"}));
    HALO_RETURN_IF_ERROR(t.children({}).status());
    HALO_RETURN_IF_ERROR(t.readRequired("addr", &c->addr));
    HALO_RETURN_IF_ERROR(t.readIpOrHost("addr", &c->addr));
    HALO_RETURN_IF_ERROR(t.readSwitch("secure", &c->secure));
    c->port = c->secure ? 9453 : 9010;
    HALO_RETURN_IF_ERROR(t.readPort("port", &c->port));
    HALO_RETURN_IF_ERROR(t.readDuration("interval", &c->interval, "s", Millis(1000)));
    HALO_RETURN_IF_ERROR(t.readDuration("timeout", &c->timeout, "s", Millis(1000)));
  }
  // Resource module.<name> for the local module, module.<name>_<addr> for a remote one.
  c->ident = c->remote ? c->name + "_" + c->addr : c->name;
  return r.readIdent("ident", &c->ident);
}

Status parseSplitbrain(const ModuleParse& p, const ElementReader& r, SplitbrainChecker* c) {
  if (p.mode != Mode::Mirror) {
    return p.modeError(r.node(), "mirror");
  }
  HALO_RETURN_IF_ERROR(r.checkAttributes({"ident", "when", "exec", "arg"}));
  HALO_RETURN_IF_ERROR(r.children({}).status());
  HALO_RETURN_IF_ERROR(readIdentRequired(r, &c->ident));
  CheckWhen when = CheckWhen::Pre;
  HALO_RETURN_IF_ERROR(r.readEnum("when", &when, {{"pre", CheckWhen::Pre}}));
  c->exec = "ping";
  HALO_RETURN_IF_ERROR(r.readString("exec", &c->exec));
  if (std::optional<std::string> arg = r.get("arg")) {
    c->arg = *arg;
  }
  if (c->exec == "ping" && splitTrimmed(c->arg, " \t,").empty()) {
    return r.invalidValue("arg", c->arg, "the witness addresses to ping, separated by blanks");
  }
  return okStatus();
}

}  // namespace

Result<CheckConfig> parseCheck(const ModuleParse& p, pugi::xml_node node) {
  ElementReader r(p.doc, node);
  CheckConfig check;
  check.line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({}));
  HALO_ASSIGN_OR_RETURN(
      std::vector<pugi::xml_node> kids,
      r.children({"tcp", "ping", "intf", "ip", "custom", "module", "splitbrain"}));
  std::map<std::string, std::map<std::string, int>> idents;  // checker class -> ident -> line
  pugi::xml_node splitbrain;
  for (pugi::xml_node k : kids) {
    ElementReader kr(p.doc, k);
    const std::string kind = k.name();
    std::string ident;
    if (kind == "tcp") {
      TcpChecker c;
      c.line = kr.line();
      HALO_RETURN_IF_ERROR(parseTcp(p, kr, &c));
      ident = c.ident;
      check.tcp.push_back(std::move(c));
    } else if (kind == "ping") {
      PingChecker c;
      c.line = kr.line();
      HALO_RETURN_IF_ERROR(parsePing(p, kr, &c));
      ident = c.ident;
      check.ping.push_back(std::move(c));
    } else if (kind == "intf") {
      IntfChecker c;
      c.line = kr.line();
      HALO_RETURN_IF_ERROR(parseIntf(p, kr, &c));
      ident = c.ident;
      check.intf.push_back(std::move(c));
    } else if (kind == "ip") {
      IpChecker c;
      c.line = kr.line();
      HALO_RETURN_IF_ERROR(parseIp(p, kr, &c));
      ident = c.ident;
      check.ip.push_back(std::move(c));
    } else if (kind == "custom") {
      CustomChecker c;
      c.line = kr.line();
      HALO_RETURN_IF_ERROR(parseCustom(p, kr, &c));
      ident = c.ident;
      check.custom.push_back(std::move(c));
    } else if (kind == "module") {
      ModuleChecker c;
      c.line = kr.line();
      HALO_RETURN_IF_ERROR(parseModule(p, kr, &c));
      ident = c.ident;
      check.module.push_back(std::move(c));
    } else {
      if (splitbrain) {
        return r.duplicateChild(k, splitbrain);
      }
      splitbrain = k;
      SplitbrainChecker c;
      c.line = kr.line();
      HALO_RETURN_IF_ERROR(parseSplitbrain(p, kr, &c));
      check.splitbrain = std::move(c);
      continue;
    }
    HALO_RETURN_IF_ERROR(claimIdent(kr, &idents[kind], ident));
  }
  return check;
}

}  // namespace halo::config::internal
