// Runs tasks against a model the way lm-evaluation-harness's simple_evaluate does: contexts for
// the (limited) test documents in order with the seeded few-shot sampler, every request of a
// task sent to the model in one call, per-sample metrics, aggregation. Writes results.json (the
// harness's layout: results["task"]["acc,none"], n-shot, configs, ...), results.md (its table)
// and samples_<task>.jsonl (prompt, target, prediction, score per document).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reef/eval/language_model.h"
#include "reef/eval/task.h"

namespace reef::eval {

// Asks a judge model: (system prompt, user prompt) -> its reply.
using JudgeFn = std::function<std::string(const std::string& system, const std::string& user)>;

struct EvalOptions {
  std::optional<int64_t> num_fewshot;  // overrides each task's num_fewshot
  double limit = -1;                   // < 0: every document; < 1: a fraction; else a count
  uint64_t fewshot_seed = 1234;        // the harness's fewshot_random_seed
  std::string progress = "auto";       // progress bar mode (base/progress.h)
  JudgeFn judge;                       // required by judge tasks
  nlohmann::json run_config;           // recorded as results.json "config"
};

struct TaskOutcome {
  nlohmann::json metrics;               // "acc,none": 0.25, "acc_stderr,none": 0.04, ...
  std::vector<nlohmann::json> samples;  // one per document
  int64_t num_fewshot = 0;
  int64_t n_original = 0, n_effective = 0;
};

// Evaluates one task.
TaskOutcome evaluate_task(Task& task, LanguageModel& model, const EvalOptions& opts);

// Evaluates every task; returns the results.json object. When `output_dir` is not empty, writes
// results.json, results.md and samples_<task>.jsonl there (each atomically).
nlohmann::json evaluate(std::vector<Task>& tasks, LanguageModel& model, const EvalOptions& opts,
                        const std::string& output_dir);

// The harness's Markdown results table for a results.json object.
std::string results_markdown(const nlohmann::json& results);

// Parses a judge reply: the first match of `score_regex` (its first group, else the match),
// clamped to [min, max]; nullopt when there is none.
std::optional<double> parse_judge_score(const JudgeConfig& cfg, const std::string& reply);

}  // namespace reef::eval
