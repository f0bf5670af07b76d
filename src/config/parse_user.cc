// <user> scripts, <vhost>, <errd> process monitoring and <failover> rules.
#include <cctype>
#include <map>

#include "base/strings.h"
#include "config/duration.h"
#include "config/element_reader.h"
#include "config/module_parser.h"
#include "config/values.h"

namespace halo::config::internal {
namespace {

// Linux truncates the command name (comm) to 15 characters; that is what errd can match.
constexpr size_t kMaxCommLength = 15;

bool isProgramPath(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '\0') {
      return false;
    }
  }
  return true;
}

Status readRegex(const ElementReader& r, std::string_view attr, std::string* out) {
  HALO_RETURN_IF_ERROR(r.readString(attr, out));
  if (!out->empty() && !isExtendedRegex(*out)) {
    return r.invalidValue(attr, *out, "a POSIX extended regular expression");
  }
  return okStatus();
}

Status parseProcAction(const ElementReader& r, ProcConfig* proc) {
  std::optional<std::string> v = r.get("action");
  if (!v) {
    return okStatus();
  }
  static const std::pair<std::string_view, ProcAction> kActions[] = {
      {"restart", ProcAction::Restart},
      {"stopstart", ProcAction::Stopstart},
      {"stop", ProcAction::Stop},
      {"noaction", ProcAction::Noaction}};
  for (const auto& [name, action] : kActions) {
    if (*v == name) {
      proc->action = action;
      return okStatus();
    }
  }
  if (!isProgramPath(*v)) {
    return r.invalidValue("action", *v,
                          "one of: restart, stopstart, stop, noaction, or a handler program path");
  }
  proc->action = ProcAction::Handler;
  proc->handler = *v;
  return okStatus();
}

Status parseProc(const ModuleParse& p, pugi::xml_node n, ProcConfig* proc) {
  ElementReader r(p.doc, n);
  proc->line = r.line();
  HALO_RETURN_IF_ERROR(
      r.checkAttributes({"name", "service", "nameregex", "argregex", "atleast", "atmax", "action",
                         "restart_services", "class", "start_after"}));
  HALO_RETURN_IF_ERROR(r.children({}).status());
  HALO_RETURN_IF_ERROR(r.readRequired("name", &proc->name));
  HALO_RETURN_IF_ERROR(r.readSwitch("service", &proc->service, SwitchStyle::YesNo));
  HALO_RETURN_IF_ERROR(readRegex(r, "nameregex", &proc->nameregex));
  HALO_RETURN_IF_ERROR(readRegex(r, "argregex", &proc->argregex));
  HALO_RETURN_IF_ERROR(r.readInt("atleast", &proc->atleast, -1, INT32_MAX));
  HALO_RETURN_IF_ERROR(r.readInt("atmax", &proc->atmax, -1, INT32_MAX));
  if (proc->atmax > 0 && proc->atleast > proc->atmax) {
    return r.invalidValue("atleast", std::to_string(proc->atleast),
                          "at most atmax, " + std::to_string(proc->atmax));
  }
  HALO_RETURN_IF_ERROR(parseProcAction(r, proc));
  if (std::optional<std::string> v = r.get("restart_services")) {
    if (!proc->service || proc->action != ProcAction::Restart) {
      return r.invalidValue("restart_services", *v,
                            "this attribute only with service=\"yes\" and action=\"restart\"");
    }
    proc->restart_services = splitTrimmed(*v, ",");
    if (proc->restart_services.empty()) {
      return r.invalidValue("restart_services", *v, "a comma-separated list of services");
    }
  }
  proc->proc_class = p.mode == Mode::Mirror ? "prim" : "both";
  HALO_RETURN_IF_ERROR(r.readString("class", &proc->proc_class));
  if (!isIdentifier(proc->proc_class)) {
    return r.invalidValue("class", proc->proc_class,
                          "prim, both, pre, second, sec or a class name of letters, digits and _");
  }
  HALO_RETURN_IF_ERROR(r.readInt("start_after", &proc->start_after, 0, INT32_MAX));
  if (!proc->service && proc->nameregex.empty() && proc->name.size() > kMaxCommLength) {
    p.warn(n, "<proc> name '" + proc->name +
                  "' is longer than 15 characters: Linux process "
                  "names are truncated, so only '" +
                  proc->name.substr(0, kMaxCommLength) + "' is matched");
  }
  return okStatus();
}

}  // namespace

Result<UserConfig> parseUser(const ModuleParse& p, pugi::xml_node node) {
  ElementReader r(p.doc, node);
  UserConfig user;
  user.line = r.line();
  HALO_RETURN_IF_ERROR(
      r.checkAttributes({"nicestoptimeout", "forcestoptimeout", "logging", "userlogsize"}));
  HALO_RETURN_IF_ERROR(r.readDuration("nicestoptimeout", &user.nicestoptimeout, "s", Millis(1000)));
  HALO_RETURN_IF_ERROR(
      r.readDuration("forcestoptimeout", &user.forcestoptimeout, "s", Millis(1000)));
  HALO_RETURN_IF_ERROR(r.readEnum(
      "logging", &user.logging, {{"userlog", UserLogging::Userlog}, {"none", UserLogging::None}}));
  HALO_RETURN_IF_ERROR(r.readInt("userlogsize", &user.userlogsize_kb, 1, 1024 * 1024));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"var"}));
  std::map<std::string, int> names;
  for (pugi::xml_node k : kids) {
    ElementReader vr(p.doc, k);
    Var var;
    var.line = vr.line();
    HALO_RETURN_IF_ERROR(vr.checkAttributes({"name", "value"}));
    HALO_RETURN_IF_ERROR(vr.children({}).status());
    HALO_RETURN_IF_ERROR(vr.readRequired("name", &var.name));
    if (!isIdentifier(var.name)) {
      return vr.invalidValue("name", var.name,
                             "an environment variable name of letters, digits and _");
    }
    if (!vr.has("value")) {
      return vr.missing("value");
    }
    var.value = *vr.get("value");
    if (auto [it, fresh] = names.emplace(var.name, var.line); !fresh) {
      return vr.invalidValue(
          "name", var.name, "a variable not already defined at line " + std::to_string(it->second));
    }
    user.vars.push_back(std::move(var));
  }
  return user;
}

Result<VhostConfig> parseVhost(const ModuleParse& p, pugi::xml_node node) {
  ElementReader r(p.doc, node);
  VhostConfig vhost;
  vhost.line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({}));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"virtualhostname"}));
  for (pugi::xml_node k : kids) {
    ElementReader vr(p.doc, k);
    VirtualHostNameConfig v;
    v.line = vr.line();
    HALO_RETURN_IF_ERROR(vr.checkAttributes({"name", "envfile", "when"}));
    HALO_RETURN_IF_ERROR(vr.children({}).status());
    HALO_RETURN_IF_ERROR(vr.readRequired("name", &v.name));
    if (!isHostName(v.name)) {
      return vr.invalidValue("name", v.name, "a host name");
    }
    HALO_RETURN_IF_ERROR(vr.readRequired("envfile", &v.envfile));
    if (!isProgramPath(v.envfile)) {
      return vr.invalidValue("envfile", v.envfile,
                             "a file path, absolute or relative to the module's bin");
    }
    HALO_RETURN_IF_ERROR(vr.readEnum(
        "when", &v.when,
        {{"prim", VhostWhen::Prim}, {"second", VhostWhen::Second}, {"both", VhostWhen::Both}}));
    vhost.names.push_back(std::move(v));
  }
  if (vhost.names.empty()) {
    return r.error("<vhost> has no <virtualhostname> (expected one)");
  }
  if (vhost.names.size() > 1) {
    return r.duplicateChild(kids[1], kids[0]);
  }
  return vhost;
}

Result<ErrdConfig> parseErrd(const ModuleParse& p, pugi::xml_node node) {
  ElementReader r(p.doc, node);
  ErrdConfig errd;
  errd.line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"polltimer"}));
  HALO_RETURN_IF_ERROR(r.readDuration("polltimer", &errd.polltimer, "s", Millis(1000)));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"proc"}));
  std::map<std::string, int> names;
  for (pugi::xml_node k : kids) {
    ProcConfig proc;
    HALO_RETURN_IF_ERROR(parseProc(p, k, &proc));
    // Each <proc> owns resource proc.<name>.
    if (auto [it, fresh] = names.emplace(proc.name, proc.line); !fresh) {
      return ElementReader(p.doc, k).invalidValue(
          "name", proc.name,
          "a name not already used by the <proc> at line " + std::to_string(it->second));
    }
    errd.procs.push_back(std::move(proc));
  }
  return errd;
}

Result<FailoverConfig> parseFailover(const ModuleParse& p, pugi::xml_node node) {
  ElementReader r(p.doc, node);
  FailoverConfig f;
  f.line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"extends", "period", "handle_time"}));
  HALO_RETURN_IF_ERROR(r.readSwitch("extends", &f.extends, SwitchStyle::YesNo));
  HALO_RETURN_IF_ERROR(r.readDuration("period", &f.period, "ms", Millis(1)));
  HALO_RETURN_IF_ERROR(r.readDuration("handle_time", &f.handle_time, "ms", Millis(0)));
  // Rules are evaluated once per period, so stability can only be measured in whole periods.
  if (f.handle_time.count() % f.period.count() != 0) {
    if (r.has("handle_time")) {
      return r.invalidValue("handle_time", *r.get("handle_time"),
                            "a multiple of the period, " + formatDuration(f.period));
    }
    return r.invalidValue("period", *r.get("period"),
                          "a divisor of the handle_time, " + formatDuration(f.handle_time));
  }
  HALO_ASSIGN_OR_RETURN(auto blocks, r.textBlocks());
  for (auto& [text, line] : blocks) {
    f.blocks.push_back({std::move(text), line});
  }
  return f;
}

}  // namespace halo::config::internal
