// Implementation of train/metrics.h.
#include "reef/train/metrics.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"

namespace reef {

void truncate_metrics_jsonl(const std::string& path, int64_t max_step) {
  if (!path_exists(path)) return;
  std::istringstream in(read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      if (j.value("step", int64_t{0}) > max_step) continue;
    } catch (const nlohmann::json::parse_error&) {
      continue;  // a line cut by a kill: drop it
    }
    kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

MetricsLogger::MetricsLogger(const Config& cfg, int64_t start_step, bool resumed) {
  make_dirs(cfg.run.dir);
  if (cfg.logging.metrics_jsonl) {
    jsonl_path_ = join_path(cfg.run.dir, "metrics.jsonl");
    if (resumed)
      truncate_metrics_jsonl(jsonl_path_, start_step);
    else if (path_exists(jsonl_path_))
      write_file_atomic(jsonl_path_, "");
    jsonl_ = fopen(jsonl_path_.c_str(), "a");
    if (!jsonl_) fail("cannot open {} for appending", jsonl_path_);
  }
  if (cfg.logging.tensorboard)
    tb_ = std::make_unique<TensorBoardWriter>(join_path(cfg.run.dir, "tb"));
  bar_ = std::make_unique<ProgressBar>("train", cfg.train.max_steps, cfg.logging.progress,
                                       cfg.logging.every);
}

MetricsLogger::~MetricsLogger() { finish(); }

void MetricsLogger::log(int64_t step, const std::map<std::string, double>& values) {
  if (jsonl_) {
    nlohmann::json j;
    j["step"] = step;
    for (const auto& [k, v] : values) {
      if (std::isfinite(v))
        j[k] = v;
      else
        j[k] = nullptr;
    }
    std::string line = j.dump() + "\n";
    fwrite(line.data(), 1, line.size(), jsonl_);
    fflush(jsonl_);
  }
  if (tb_) {
    for (const auto& [k, v] : values) {
      std::string tag = k.rfind("val_", 0) == 0 ? "val/" + k.substr(4) : "train/" + k;
      tb_->add_scalar(tag, v, step);
    }
    tb_->flush();
  }
}

void MetricsLogger::progress(int64_t step, const std::string& fields) {
  if (bar_) bar_->update(step, fields);
}

void MetricsLogger::finish() {
  if (bar_) bar_->finish();
  if (jsonl_) {
    fclose(jsonl_);
    jsonl_ = nullptr;
  }
  if (tb_) tb_->flush();
}

}  // namespace reef
