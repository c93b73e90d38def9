// Implementation of base/progress.h.
#include "reef/base/progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>

#include "reef/base/log.h"

namespace reef {
namespace {
std::atomic<bool> g_bar_visible{false};
void clear_bar() {
  if (g_bar_visible.exchange(false)) fputs("\r\033[2K", stderr);
}
int terminal_width() {
  winsize w{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 20) return w.ws_col;
  return 100;
}
}  // namespace

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  auto t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

std::string format_count(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

ProgressBar::ProgressBar(std::string label, int64_t total, const std::string& mode,
                         int64_t plain_every)
    : label_(std::move(label)), total_(total), plain_every_(plain_every < 1 ? 1 : plain_every) {
  bar_ = mode == "on" || (mode == "auto" && stderr_is_tty());
  start_ = std::chrono::steady_clock::now();
  if (bar_) set_log_clear_hook(&clear_bar);
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(int64_t done, const std::string& fields) {
  if (start_done_ < 0) {
    start_done_ = done - 1 < 0 ? 0 : done - 1;
    start_ = std::chrono::steady_clock::now();
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = done > start_done_ ? elapsed / static_cast<double>(done - start_done_) : 0;
  double eta = rate * static_cast<double>(total_ - done);
  if (!bar_) {
    if (done % plain_every_ == 0 || done == total_)
      log_info("{} {}/{} {} eta {}", label_, done, total_, fields, format_duration(eta));
    return;
  }
  int width = terminal_width();
  std::string head = fmt::format("{} {}/{} ", label_, done, total_);
  std::string tail = fmt::format(" {} eta {}", fields, format_duration(eta));
  int bar_w = width - static_cast<int>(head.size() + tail.size()) - 3;
  if (bar_w > 40) bar_w = 40;
  std::string bar;
  if (bar_w >= 5) {
    int filled = total_ > 0 ? static_cast<int>(bar_w * done / total_) : 0;
    bar = "[" + std::string(filled, '#') + std::string(bar_w - filled, '-') + "]";
  }
  std::string line = head + bar + tail;
  if (static_cast<int>(line.size()) >= width) line.resize(width - 1);
  fmt::print(stderr, "\r\033[2K{}", line);
  fflush(stderr);
  g_bar_visible = true;
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (bar_) {
    if (g_bar_visible.exchange(false)) fputs("\n", stderr);
    set_log_clear_hook(nullptr);
  }
}

}  // namespace reef
