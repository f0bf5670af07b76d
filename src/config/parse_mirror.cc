// <heart> and <rfs>: the mirror-only sections.
#include <map>

#include "config/duration.h"
#include "config/element_reader.h"
#include "config/module_parser.h"
#include "config/values.h"

namespace halo::config::internal {
namespace {

constexpr std::string_view kIdentExpectation = "a name of letters, digits and _ - . : @";

// A heartbeat must be sent several times within its timeout or one lost packet is a failure.
Status checkPulseBelowTimeout(const ElementReader& r, Millis pulse, Millis timeout) {
  if (pulse < timeout) {
    return okStatus();
  }
  if (r.has("timeout")) {
    return r.invalidValue("timeout", *r.get("timeout"),
                          "a duration greater than the pulse, " + formatDuration(pulse));
  }
  return r.invalidValue("pulse", *r.get("pulse"),
                        "a duration less than the timeout, " + formatDuration(timeout));
}

Status parseHeartbeat(const ModuleParse& p, pugi::xml_node n, const HeartConfig& heart,
                      HeartbeatConfig* hb) {
  ElementReader r(p.doc, n);
  hb->line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"name", "ident", "pulse", "timeout"}));
  HALO_RETURN_IF_ERROR(r.children({}).status());
  HALO_RETURN_IF_ERROR(r.readRequired("name", &hb->name));
  if (!isResourceIdent(hb->name)) {
    return r.invalidValue("name", hb->name, std::string(kIdentExpectation));
  }
  hb->ident = hb->name;
  HALO_RETURN_IF_ERROR(r.readIdent("ident", &hb->ident));
  hb->pulse = heart.pulse;
  hb->timeout = heart.timeout;
  HALO_RETURN_IF_ERROR(r.readDuration("pulse", &hb->pulse, "ms", Millis(1)));
  HALO_RETURN_IF_ERROR(r.readDuration("timeout", &hb->timeout, "ms", Millis(1)));
  if (r.has("pulse") || r.has("timeout")) {
    HALO_RETURN_IF_ERROR(checkPulseBelowTimeout(r, hb->pulse, hb->timeout));
  }
  return okStatus();
}

Status parseNotReplicated(const ModuleParse& p, pugi::xml_node n, NotReplicatedConfig* out) {
  ElementReader r(p.doc, n);
  out->line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"path", "regexpath"}));
  HALO_RETURN_IF_ERROR(r.children({}).status());
  if (r.has("path") == r.has("regexpath")) {
    return r.has("path") ? r.error("<notreplicated>: give either 'path' or 'regexpath', not both")
                         : r.missing("path' or 'regexpath");
  }
  if (r.has("path")) {
    HALO_RETURN_IF_ERROR(r.readString("path", &out->path));
    if (!isCleanRelativePath(out->path)) {
      return r.invalidValue("path", out->path,
                            "a path relative to the replicated directory, without '..'");
    }
    return okStatus();
  }
  std::string regex;
  HALO_RETURN_IF_ERROR(r.readString("regexpath", &regex));
  out->only_matching = regex.front() == '!';
  out->regexpath = out->only_matching ? regex.substr(1) : regex;
  if (out->regexpath.empty() || !isExtendedRegex(out->regexpath)) {
    return r.invalidValue("regexpath", regex,
                          "a POSIX extended regular expression, optionally preceded by '!'");
  }
  return okStatus();
}

Status parseReplicated(const ModuleParse& p, pugi::xml_node n, ReplicatedConfig* out) {
  ElementReader r(p.doc, n);
  out->line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"dir", "mode"}));
  HALO_RETURN_IF_ERROR(r.readRequired("dir", &out->dir));
  // "%HALO_ROOT%/data" with HALO_ROOT "/" gives "//data": the same directory.
  while (out->dir.size() > 1 && out->dir.rfind("//", 0) == 0) {
    out->dir.erase(0, 1);
  }
  if (!isCleanAbsolutePath(out->dir)) {
    return r.invalidValue("dir", out->dir,
                          "an absolute directory path other than /, without '.', '..' or a "
                          "trailing '/'");
  }
  HALO_RETURN_IF_ERROR(r.readEnum("mode", &out->read_only, {{"read_only", true}}));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"tocheck", "notreplicated"}));
  for (pugi::xml_node k : kids) {
    if (std::string_view(k.name()) == "tocheck") {
      ElementReader tr(p.doc, k);
      TocheckConfig t;
      t.line = tr.line();
      HALO_RETURN_IF_ERROR(tr.checkAttributes({"path"}));
      HALO_RETURN_IF_ERROR(tr.children({}).status());
      HALO_RETURN_IF_ERROR(tr.readRequired("path", &t.path));
      if (!isCleanRelativePath(t.path)) {
        return tr.invalidValue("path", t.path,
                               "a path relative to the replicated directory, without '..'");
      }
      out->tocheck.push_back(std::move(t));
    } else {
      NotReplicatedConfig nr;
      HALO_RETURN_IF_ERROR(parseNotReplicated(p, k, &nr));
      out->notreplicated.push_back(std::move(nr));
    }
  }
  return okStatus();
}

Status readRuzoneBlocksize(const ElementReader& r, int64_t* out) {
  std::optional<std::string> v = r.get("ruzone_blocksize");
  if (!v) {
    return okStatus();
  }
  std::optional<int64_t> n = parseInteger(*v);
  // A power of two keeps zone arithmetic to shifts; the bounds keep bitmaps small and useful.
  if (!n || *n < 65536 || *n > 67108864 || (*n & (*n - 1)) != 0) {
    return r.invalidValue("ruzone_blocksize", *v,
                          "a power of two between 65536 (64 KiB) and 67108864 (64 MiB)");
  }
  *out = *n;
  return okStatus();
}

Status readRfsAttributes(const ModuleParse& p, const ElementReader& r, RfsConfig* rfs) {
  HALO_RETURN_IF_ERROR(r.checkAttributes(
      {"acl",         "async",           "iotimeout",        "roflags",         "locktimeout",
       "sendtimeout", "nbrei",           "ruzone_blocksize", "namespacepolicy", "reitimeout",
       "reicommit",   "reidetail",       "allocthreshold",   "nbremconn",       "checktime",
       "checkintv",   "nfsbox_options",  "scripts",          "reiallowedbw",    "syncdelta",
       "syncat",      "mountoversuffix", "packetsize",       "reipacketsize",   "mountover"}));
  HALO_RETURN_IF_ERROR(r.readSwitch("acl", &rfs->acl));
  HALO_RETURN_IF_ERROR(
      r.readEnum("async", &rfs->async, {{"second", RfsAsync::Second}, {"none", RfsAsync::None}}));
  HALO_RETURN_IF_ERROR(r.readDuration("iotimeout", &rfs->iotimeout, "s", Millis(1000)));
  if (std::optional<std::string> v = r.get("roflags")) {
    std::optional<int64_t> n = parseIntegerOrHex(*v);
    if (!n || *n < 0 || *n > 0xffffffffLL) {
      return r.invalidValue("roflags", *v, "a flag mask such as 0x10 or 0x10000");
    }
    rfs->roflags = *n;
  }
  HALO_RETURN_IF_ERROR(r.readDuration("locktimeout", &rfs->locktimeout, "s", Millis(1000)));
  HALO_RETURN_IF_ERROR(r.readDuration("sendtimeout", &rfs->sendtimeout, "s", Millis(1000)));
  HALO_RETURN_IF_ERROR(r.readInt("nbrei", &rfs->nbrei, 1, 64));
  HALO_RETURN_IF_ERROR(readRuzoneBlocksize(r, &rfs->ruzone_blocksize));
  HALO_RETURN_IF_ERROR(r.readEnum("namespacepolicy", &rfs->namespacepolicy,
                                  {{"0", 0}, {"1", 1}, {"3", 3}, {"4", 4}}));
  HALO_RETURN_IF_ERROR(r.readDuration("reitimeout", &rfs->reitimeout, "s", Millis(1000)));
  HALO_RETURN_IF_ERROR(r.readInt("reicommit", &rfs->reicommit, 0, INT32_MAX));
  HALO_RETURN_IF_ERROR(r.readSwitch("reidetail", &rfs->reidetail));
  HALO_RETURN_IF_ERROR(r.readInt("allocthreshold", &rfs->allocthreshold, 0, INT32_MAX));
  HALO_RETURN_IF_ERROR(r.readInt("nbremconn", &rfs->nbremconn, 1, 32));
  HALO_RETURN_IF_ERROR(r.readDuration("checktime", &rfs->checktime, "ms", Millis(1)));
  HALO_RETURN_IF_ERROR(r.readDuration("checkintv", &rfs->checkintv, "s", Millis(1000)));
  HALO_RETURN_IF_ERROR(
      r.readEnum("nfsbox_options", &rfs->nfsbox_options,
                 {{"cross", NfsboxOptions::Cross}, {"nocross", NfsboxOptions::NoCross}}));
  HALO_RETURN_IF_ERROR(r.readSwitch("scripts", &rfs->scripts));
  HALO_RETURN_IF_ERROR(r.readInt("reiallowedbw", &rfs->reiallowedbw, 0, INT32_MAX));
  HALO_RETURN_IF_ERROR(r.readDuration("syncdelta", &rfs->syncdelta, "m", Millis(0)));
  HALO_RETURN_IF_ERROR(r.readString("syncat", &rfs->syncat));
  if (!rfs->syncat.empty() && !isCronSpec(rfs->syncat)) {
    return r.invalidValue("syncat", rfs->syncat,
                          "a crontab time specification of five fields, such as \"01 0 * * *\"");
  }
  HALO_RETURN_IF_ERROR(r.readString("mountoversuffix", &rfs->mountoversuffix));
  if (rfs->mountoversuffix.find('/') != std::string::npos) {
    return r.invalidValue("mountoversuffix", rfs->mountoversuffix,
                          "a file name suffix without '/'");
  }
  HALO_RETURN_IF_ERROR(r.readInt64("packetsize", &rfs->packetsize, 4096, 67108864));
  HALO_RETURN_IF_ERROR(r.readInt64("reipacketsize", &rfs->reipacketsize, 4096, 67108864));
  if (r.has("mountover")) {
    p.warn(r.node(), "<rfs> attribute 'mountover' is legacy SafeKit 7 syntax and is ignored");
  }
  return okStatus();
}

}  // namespace

Result<HeartConfig> parseHeart(const ModuleParse& p, pugi::xml_node node) {
  ElementReader r(p.doc, node);
  HeartConfig heart;
  heart.line = r.line();
  HALO_RETURN_IF_ERROR(r.checkAttributes({"port", "pulse", "timeout", "permanent_arp"}));
  HALO_RETURN_IF_ERROR(r.readPort("port", &heart.port));
  HALO_RETURN_IF_ERROR(r.readDuration("pulse", &heart.pulse, "ms", Millis(1)));
  HALO_RETURN_IF_ERROR(r.readDuration("timeout", &heart.timeout, "ms", Millis(1)));
  HALO_RETURN_IF_ERROR(checkPulseBelowTimeout(r, heart.pulse, heart.timeout));
  HALO_RETURN_IF_ERROR(r.readSwitch("permanent_arp", &heart.permanent_arp));
  HALO_ASSIGN_OR_RETURN(
      std::vector<pugi::xml_node> kids,
      r.children({"heartbeat"},
                 {{"server",
                   "legacy syntax not supported, use <heartbeat name=...> naming a lan "
                   "of cluster.xml"}}));
  std::map<std::string, int> names;
  std::map<std::string, int> idents;
  for (pugi::xml_node k : kids) {
    HeartbeatConfig hb;
    HALO_RETURN_IF_ERROR(parseHeartbeat(p, k, heart, &hb));
    ElementReader hr(p.doc, k);
    if (auto [it, fresh] = names.emplace(hb.name, hb.line); !fresh) {
      return hr.invalidValue(
          "name", hb.name,
          "a lan not already used by the heartbeat at line " + std::to_string(it->second));
    }
    if (auto [it, fresh] = idents.emplace(hb.ident, hb.line); !fresh) {
      return hr.invalidValue(
          hr.has("ident") ? "ident" : "name", hb.ident,
          "an ident not already used by the heartbeat at line " + std::to_string(it->second));
    }
    heart.heartbeats.push_back(std::move(hb));
  }
  if (heart.heartbeats.empty()) {
    return r.error(
        "<heart> has no <heartbeat> (expected at least one, naming a lan of "
        "cluster.xml)");
  }
  return heart;
}

Result<RfsConfig> parseRfs(const ModuleParse& p, pugi::xml_node node) {
  ElementReader r(p.doc, node);
  RfsConfig rfs;
  rfs.line = r.line();
  HALO_RETURN_IF_ERROR(readRfsAttributes(p, r, &rfs));
  HALO_ASSIGN_OR_RETURN(std::vector<pugi::xml_node> kids, r.children({"replicated", "flow"}));
  pugi::xml_node flow;
  for (pugi::xml_node k : kids) {
    if (std::string_view(k.name()) == "flow") {
      if (flow) {
        return r.duplicateChild(k, flow);
      }
      flow = k;
      ElementReader fr(p.doc, k);
      rfs.flow_line = fr.line();
      HALO_RETURN_IF_ERROR(fr.checkAttributes({"name"}));
      HALO_RETURN_IF_ERROR(fr.children({}).status());
      HALO_RETURN_IF_ERROR(fr.readRequired("name", &rfs.flow));
      continue;
    }
    ReplicatedConfig rep;
    HALO_RETURN_IF_ERROR(parseReplicated(p, k, &rep));
    // Two entries over one tree would replicate the same files twice with different rules.
    for (const ReplicatedConfig& other : rfs.replicated) {
      if (isSameOrBelow(rep.dir, other.dir) || isSameOrBelow(other.dir, rep.dir)) {
        return ElementReader(p.doc, k).invalidValue(
            "dir", rep.dir,
            "a directory that neither contains nor lies inside '" + other.dir + "' of line " +
                std::to_string(other.line));
      }
    }
    rfs.replicated.push_back(std::move(rep));
  }
  if (rfs.replicated.empty()) {
    return r.error("<rfs> has no <replicated> (expected at least one directory)");
  }
  return rfs;
}

}  // namespace halo::config::internal
