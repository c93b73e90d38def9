// Logging to stderr: timestamped plain lines, one format for every command. Progress bars live
// in progress.h and cooperate with these lines (a log line clears the bar first).
#pragma once

#include <fmt/format.h>

#include <string>

namespace reef {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_line(LogLevel level, const std::string& msg);
// True when stderr is a terminal (progress bars redraw in place; otherwise plain lines).
bool stderr_is_tty();

template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
  if (log_level() <= LogLevel::kInfo)
    log_line(LogLevel::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... args) {
  if (log_level() <= LogLevel::kWarn)
    log_line(LogLevel::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... args) {
  if (log_level() <= LogLevel::kDebug)
    log_line(LogLevel::kDebug, fmt::format(f, std::forward<Args>(args)...));
}

// A hook the progress bar installs so log lines do not interleave with a half-drawn bar.
using LogClearHook = void (*)();
void set_log_clear_hook(LogClearHook hook);

}  // namespace reef
