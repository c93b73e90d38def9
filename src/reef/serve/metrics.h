// The server's Prometheus metrics (GET /metrics, text exposition format 0.0.4): requests by
// endpoint and status, prompt and generated tokens, time to first token and inter-token latency
// histograms, queue depth, running sequences, and the decode batch size. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace reef {

// A cumulative histogram with fixed upper bounds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  void observe(double value);
  // "# TYPE name histogram" and its _bucket/_sum/_count lines.
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound (non-cumulative; summed when rendered)
  uint64_t count_ = 0;
  double sum_ = 0;
};

class ServeMetrics {
 public:
  ServeMetrics();
  void count_request(const std::string& endpoint, int status);
  void add_tokens(int64_t prompt, int64_t generated);
  void observe_ttft(double seconds);
  void observe_inter_token(double seconds);
  void observe_step(int64_t decode_rows);
  // Prometheus text; the engine's gauges and its count of cancelled sequences are read now.
  std::string render(int64_t waiting, int64_t running, int64_t slots, int64_t cancelled,
                     int64_t prefix_query_tokens = 0, int64_t prefix_hit_tokens = 0) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, inter_token_, batch_size_;
};

}  // namespace reef
