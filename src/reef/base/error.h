// reef::Error, the one exception type library code throws. Its message is a single actionable
// line for the user; the CLI turns it into an exit code (2 for config/usage errors, 1 otherwise).
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace reef {

enum class ErrorKind {
  kRuntime,  // failed work: I/O, corrupt files, numerical trouble -> exit code 1
  kUsage,    // bad config, bad flag, missing input file: nothing was done -> exit code 2
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ErrorKind kind = ErrorKind::kRuntime)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return kind_ == ErrorKind::kUsage ? 2 : 1; }

 private:
  ErrorKind kind_;
};

// Throws reef::Error(kRuntime) with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...), ErrorKind::kRuntime);
}

// Throws reef::Error(kUsage): the user's input is wrong, nothing has been done.
template <typename... Args>
[[noreturn]] void usage_error(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...), ErrorKind::kUsage);
}

}  // namespace reef
