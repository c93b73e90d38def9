// Prometheus metrics (see metrics.h).
#include "reef/serve/metrics.h"

#include <fmt/format.h>

namespace reef {

void Histogram::observe(double value) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {
      ++counts_[i];
      break;
    }
  }
  ++count_;
  sum_ += value;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::string out = fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name,
                     sum_, name, count_);
  return out;
}

namespace {
const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10,   30};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};
}  // namespace

ServeMetrics::ServeMetrics()
    : ttft_(kLatencyBounds), inter_token_(kLatencyBounds), batch_size_(kBatchBounds) {}

void ServeMetrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lk(mu_);
  ++requests_[{endpoint, status}];
}

void ServeMetrics::add_tokens(int64_t prompt, int64_t generated) {
  std::lock_guard<std::mutex> lk(mu_);
  prompt_tokens_ += static_cast<uint64_t>(prompt);
  generated_tokens_ += static_cast<uint64_t>(generated);
}

void ServeMetrics::observe_ttft(double seconds) {
  std::lock_guard<std::mutex> lk(mu_);
  ttft_.observe(seconds);
}

void ServeMetrics::observe_inter_token(double seconds) {
  std::lock_guard<std::mutex> lk(mu_);
  inter_token_.observe(seconds);
}

void ServeMetrics::observe_step(int64_t decode_rows) {
  std::lock_guard<std::mutex> lk(mu_);
  batch_size_.observe(static_cast<double>(decode_rows));
}

std::string ServeMetrics::render(int64_t waiting, int64_t running, int64_t slots, int64_t cancelled,
                                 int64_t prefix_query_tokens, int64_t prefix_hit_tokens) const {
  std::lock_guard<std::mutex> lk(mu_);
  std::string out =
      "# HELP reef_requests_total HTTP requests by endpoint and status code.\n"
      "# TYPE reef_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out += fmt::format("reef_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first,
                       key.second, n);
  }
  out += fmt::format(
      "# HELP reef_prompt_tokens_total Prompt tokens of accepted requests.\n"
      "# TYPE reef_prompt_tokens_total counter\nreef_prompt_tokens_total {}\n"
      "# HELP reef_generated_tokens_total Generated tokens of finished sequences.\n"
      "# TYPE reef_generated_tokens_total counter\nreef_generated_tokens_total {}\n"
      "# HELP reef_queue_depth Sequences waiting for a KV slot.\n"
      "# TYPE reef_queue_depth gauge\nreef_queue_depth {}\n"
      "# HELP reef_running_sequences Sequences holding a KV slot.\n"
      "# TYPE reef_running_sequences gauge\nreef_running_sequences {}\n"
      "# HELP reef_kv_slots KV-cache slots (the most sequences decoded together).\n"
      "# TYPE reef_kv_slots gauge\nreef_kv_slots {}\n"
      "# HELP reef_cancelled_sequences_total Sequences ended early because their client left.\n"
      "# TYPE reef_cancelled_sequences_total counter\nreef_cancelled_sequences_total {}\n"
      "# HELP reef_prefix_cache_queries_total Prompt tokens looked up in the prefix cache.\n"
      "# TYPE reef_prefix_cache_queries_total counter\nreef_prefix_cache_queries_total {}\n"
      "# HELP reef_prefix_cache_hits_total Prompt tokens whose keys and values came from the "
      "prefix cache.\n"
      "# TYPE reef_prefix_cache_hits_total counter\nreef_prefix_cache_hits_total {}\n"
      "# HELP reef_prefix_cache_hit_rate Hits over queries since the server started.\n"
      "# TYPE reef_prefix_cache_hit_rate gauge\nreef_prefix_cache_hit_rate {}\n",
      prompt_tokens_, generated_tokens_, waiting, running, slots, cancelled, prefix_query_tokens,
      prefix_hit_tokens,
      prefix_query_tokens > 0
          ? static_cast<double>(prefix_hit_tokens) / static_cast<double>(prefix_query_tokens)
          : 0.0);
  out += ttft_.render("reef_time_to_first_token_seconds",
                      "Time from request arrival to its first generated token.");
  out += inter_token_.render("reef_inter_token_latency_seconds",
                             "Time between consecutive tokens of one sequence.");
  out += batch_size_.render("reef_batch_size", "Sequences in each batched decode step.");
  return out;
}

}  // namespace reef
