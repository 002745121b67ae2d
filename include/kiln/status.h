// Status and Result<T>: how every fallible kiln call reports failure. Core code never throws.
//
// A Status carries a code and a message a user can act on: what failed, where (node, op, opset,
// file offset) and what to do. Result<T> holds either a value or a non-ok Status.
// Both are cheap to move; an ok Status allocates nothing.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kiln {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,   // bad usage or bad input from the caller (CLI exit 2)
  kNotFound,          // a file, binding or key that does not exist (CLI exit 2)
  kInvalidData,       // a corrupt or malformed file: engine, ONNX, cache (CLI exit 2)
  kIoError,           // the OS refused a read or write (CLI exit 2)
  kUnsupported,       // valid input kiln cannot handle yet: an op, dtype, opset (CLI exit 3)
  kResourceExhausted, // out of memory, disk or a declared-size limit
  kUnavailable,       // no GPU, no driver, a library missing at run time
  kDeviceError,       // a CUDA, cuBLAS, NVRTC or cuDNN call failed
  kMismatch,          // a comparison or check failed (CLI exit 1)
  kCancelled,
  kInternal,          // a kiln bug
};

std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message);

  static Status ok_status() { return Status(); }
  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  const std::string& message() const;
  // "<code name>: <message>", or "ok".
  std::string to_string() const;
  // Returns a copy whose message is prefixed with `context` and ": ".
  Status with_context(std::string_view context) const;
  // Marks a Status as deliberately ignored.
  void ignore() const {}

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const Rep> rep_;
};

Status invalid_argument(std::string message);
Status not_found(std::string message);
Status invalid_data(std::string message);
Status io_error(std::string message);
Status unsupported(std::string message);
Status resource_exhausted(std::string message);
Status unavailable(std::string message);
Status device_error(std::string message);
Status mismatch(std::string message);
Status cancelled(std::string message);
Status internal_error(std::string message);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result built from ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

namespace detail {
inline Status to_status(const Status& s) { return s; }
template <typename T>
Status to_status(const Result<T>& r) { return r.status(); }
}  // namespace detail

}  // namespace kiln

#define KILN_CONCAT_INNER_(a, b) a##b
#define KILN_CONCAT_(a, b) KILN_CONCAT_INNER_(a, b)

#define KILN_RETURN_IF_ERROR(expr)                               \
  do {                                                           \
    ::kiln::Status kiln_status_ = ::kiln::detail::to_status(expr); \
    if (!kiln_status_.ok()) return kiln_status_;                 \
  } while (0)

#define KILN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL_(KILN_CONCAT_(kiln_result_, __LINE__), lhs, expr)
