// A progress bar for long work: redrawn in place on a terminal (step, loss, lr, tokens/s, MFU,
// ETA), plain log lines every `plain_every` updates otherwise. Log lines printed while a bar is
// shown clear it first, so output never interleaves.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace reef {

class ProgressBar {
 public:
  // mode: "auto" (a bar when stderr is a terminal), "on" or "off" (plain lines).
  ProgressBar(std::string label, int64_t total, const std::string& mode, int64_t plain_every = 1);
  ~ProgressBar();
  // `done` units finished; `fields` is the text after the bar ("loss 2.31 lr 3e-4 ...").
  void update(int64_t done, const std::string& fields);
  void finish();
  bool is_bar() const { return bar_; }

 private:
  std::string label_;
  int64_t total_ = 0, start_done_ = -1, plain_every_ = 1;
  bool bar_ = false, finished_ = false;
  std::chrono::steady_clock::time_point start_;
};

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);
// "12.3k", "4.56M".
std::string format_count(double v);

}  // namespace reef
