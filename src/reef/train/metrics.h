// Where training metrics go: metrics.jsonl (one JSON object per logged step), TensorBoard
// event files, and the progress bar or plain log lines. On resume, records past the resumed
// step are dropped from metrics.jsonl so the file reads as one uninterrupted run.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "reef/base/progress.h"
#include "reef/base/tensorboard.h"
#include "reef/config/config.h"

namespace reef {

class MetricsLogger {
 public:
  MetricsLogger(const Config& cfg, int64_t start_step, bool resumed);
  ~MetricsLogger();
  // One record: "step" plus the numeric fields given (e.g. loss, lr, grad_norm, val_loss).
  void log(int64_t step, const std::map<std::string, double>& values);
  // Redraws the progress bar (or prints a plain line on its schedule).
  void progress(int64_t step, const std::string& fields);
  void finish();

 private:
  std::string jsonl_path_;
  FILE* jsonl_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
  std::unique_ptr<ProgressBar> bar_;
};

// Keeps only the records with step <= max_step (atomic rewrite). Missing file: nothing to do.
void truncate_metrics_jsonl(const std::string& path, int64_t max_step);

}  // namespace reef
