#include "proto/api.h"

namespace halo::proto {

namespace {
// Reads an optional string member; a present member of another type is an error.
Status readString(const nlohmann::json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return okStatus();
  }
  if (!it->is_string()) {
    return invalidArgument(std::string("member '") + key + "' must be a string");
  }
  out = it->get<std::string>();
  return okStatus();
}

Result<nlohmann::json> parseObject(std::string_view line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return invalidArgument("not a JSON object");
  }
  return j;
}
}  // namespace

std::string encodeRequest(const Request& r) {
  // `{}` in a Request initializer makes params a JSON null: send it as an empty object.
  nlohmann::json j = {{"cmd", r.cmd},
                      {"params", r.params.is_null() ? nlohmann::json::object() : r.params}};
  if (!r.module.empty()) {
    j["module"] = r.module;
  }
  if (!r.identity.empty()) {
    j["identity"] = r.identity;
  }
  return j.dump();
}

Result<Request> decodeRequest(std::string_view line) {
  HALO_ASSIGN_OR_RETURN(nlohmann::json j, parseObject(line));
  Request r;
  HALO_RETURN_IF_ERROR(readString(j, "cmd", r.cmd));
  HALO_RETURN_IF_ERROR(readString(j, "module", r.module));
  HALO_RETURN_IF_ERROR(readString(j, "identity", r.identity));
  if (r.cmd.empty()) {
    return invalidArgument("missing member 'cmd'");
  }
  auto p = j.find("params");
  if (p != j.end()) {
    if (!p->is_object()) {
      return invalidArgument("member 'params' must be an object");
    }
    r.params = *p;
  }
  return r;
}

std::string encodeReply(const Reply& r) {
  return nlohmann::json{{"exit_code", r.exit_code}, {"message", r.message}, {"data", r.data}}
      .dump();
}

Result<Reply> decodeReply(std::string_view line) {
  HALO_ASSIGN_OR_RETURN(nlohmann::json j, parseObject(line));
  Reply r;
  auto code = j.find("exit_code");
  if (code == j.end() || !code->is_number_integer()) {
    return invalidArgument("missing integer member 'exit_code'");
  }
  r.exit_code = code->get<int>();
  HALO_RETURN_IF_ERROR(readString(j, "message", r.message));
  auto d = j.find("data");
  if (d != j.end() && d->is_object()) {
    r.data = *d;
  }
  return r;
}

}  // namespace halo::proto
