#pragma once
// The local API: one JSON object per line on a unix socket, between the CLI, halod and the module
// runtimes. Requests name a command; replies carry the exit code the CLI should return, a message
// for the operator and structured data. docs/local-api.md lists the commands.

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace halo::proto {

struct Request {
  std::string cmd;              // "start", "stop", "state", "wait", ...
  std::string module;           // empty for node-level commands
  std::string identity;         // -i: who asks (an operator when empty)
  nlohmann::json params = nlohmann::json::object();
};

struct Reply {
  int exit_code = 0;            // what the CLI exits with; 0 = success
  std::string message;          // for the operator; on failure says what to do next
  nlohmann::json data = nlohmann::json::object();
  bool ok() const { return exit_code == 0; }
};

std::string encodeRequest(const Request& r);
// Untrusted input: any malformed line is an InvalidArgument, never an exception.
Result<Request> decodeRequest(std::string_view line);
std::string encodeReply(const Reply& r);
Result<Reply> decodeReply(std::string_view line);

inline Reply errorReply(std::string message, int exit_code = 1) {
  return Reply{exit_code, std::move(message), nlohmann::json::object()};
}
inline Reply okReply(std::string message = {}, nlohmann::json data = nlohmann::json::object()) {
  return Reply{0, std::move(message), std::move(data)};
}

}  // namespace halo::proto
