#include "base/status.h"

#include <cstring>

namespace halo {

const char* statusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::Ok: return "OK";
    case StatusCode::InvalidArgument: return "InvalidArgument";
    case StatusCode::NotFound: return "NotFound";
    case StatusCode::AlreadyExists: return "AlreadyExists";
    case StatusCode::FailedPrecondition: return "FailedPrecondition";
    case StatusCode::Unavailable: return "Unavailable";
    case StatusCode::DeadlineExceeded: return "DeadlineExceeded";
    case StatusCode::PermissionDenied: return "PermissionDenied";
    case StatusCode::Internal: return "Internal";
  }
  return "Unknown";
}

std::string Status::toString() const {
  if (ok()) {
    return "OK";
  }
  return std::string(statusCodeName(code_)) + ": " + message_;
}

Status Status::withPrefix(const std::string& prefix) const {
  if (ok()) {
    return *this;
  }
  return {code_, prefix + ": " + message_};
}

Status errnoStatus(const std::string& what, int err) {
  StatusCode code = StatusCode::Internal;
  if (err == ENOENT) {
    code = StatusCode::NotFound;
  } else if (err == EACCES || err == EPERM) {
    code = StatusCode::PermissionDenied;
  } else if (err == EEXIST) {
    code = StatusCode::AlreadyExists;
  }
  return {code, what + ": " + std::strerror(err)};
}

}  // namespace halo
