#pragma once
// Status and Result<T>: the error vocabulary of every daemon path (no exceptions there).
// A Status carries a canonical code and a message with context ("file:line: what, expected what").

#include <string>
#include <utility>
#include <variant>

namespace halo {

enum class StatusCode {
  Ok,
  InvalidArgument,     // untrusted input was wrong (configuration, command arguments, packets)
  NotFound,            // a named thing does not exist (module, file, resource)
  AlreadyExists,       // a unique thing exists already (module name, module id)
  FailedPrecondition,  // the request is valid but not in this state (start of a started module)
  Unavailable,         // a peer or daemon cannot be reached now; retrying may help
  DeadlineExceeded,    // a bounded wait ran out
  PermissionDenied,
  Internal,            // an environment fault we could not classify (syscall failure, I/O error)
};

const char* statusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::Ok; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: message", for logs where the code matters.
  std::string toString() const;
  // Returns a copy whose message is "prefix: message".
  Status withPrefix(const std::string& prefix) const;

 private:
  StatusCode code_ = StatusCode::Ok;
  std::string message_;
};

inline Status okStatus() { return {}; }
inline Status invalidArgument(std::string m) { return {StatusCode::InvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {StatusCode::NotFound, std::move(m)}; }
inline Status alreadyExists(std::string m) { return {StatusCode::AlreadyExists, std::move(m)}; }
inline Status failedPrecondition(std::string m) {
  return {StatusCode::FailedPrecondition, std::move(m)};
}
inline Status unavailable(std::string m) { return {StatusCode::Unavailable, std::move(m)}; }
inline Status deadlineExceeded(std::string m) {
  return {StatusCode::DeadlineExceeded, std::move(m)};
}
inline Status internalError(std::string m) { return {StatusCode::Internal, std::move(m)}; }
// An Internal status naming the failed call and errno's text: "open /x: No such file or directory".
Status errnoStatus(const std::string& what, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, like StatusOr.
  Result(Status status) : v_(std::move(status)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // By value on temporaries, so `for (auto& x : *f())` does not dangle.
  T operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace halo

#define HALO_CONCAT_INNER(a, b) a##b
#define HALO_CONCAT(a, b) HALO_CONCAT_INNER(a, b)

#define HALO_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::halo::Status halo_status_ = (expr);   \
    if (!halo_status_.ok()) {               \
      return halo_status_;                  \
    }                                       \
  } while (0)

#define HALO_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) {                                 \
    return tmp.status();                           \
  }                                                \
  lhs = std::move(tmp).value()

#define HALO_ASSIGN_OR_RETURN(lhs, expr) \
  HALO_ASSIGN_OR_RETURN_IMPL(HALO_CONCAT(halo_result_, __LINE__), lhs, expr)
