// Implementation of base/log.h: one mutex-guarded writer to stderr.
#include "reef/base/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>

namespace reef {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<LogClearHook> g_clear_hook{nullptr};
std::mutex g_mu;
}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
void set_log_clear_hook(LogClearHook hook) { g_clear_hook = hook; }
bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

void log_line(LogLevel level, const std::string& msg) {
  static const char* kTags[] = {"debug", "info", "warn", "error"};
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(g_mu);
  if (auto hook = g_clear_hook.load()) hook();
  std::string line = fmt::format("[{} {}] {}\n", ts, kTags[static_cast<int>(level)], msg);
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

}  // namespace reef
