// Per-sample scores and their aggregation as lm-evaluation-harness computes them: acc/acc_norm
// (argmax of log-likelihoods, raw and divided by the choice's length in characters), acc_bytes,
// exact_match (after regexes_to_ignore, ignore_case, ignore_punctuation, ignore_numbers),
// weighted word/byte perplexity and bits per byte, and the filters (regex extraction,
// take_first, ...) applied to generations. Regexes are PCRE2, close to Python's `re`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "reef/eval/task.h"

namespace reef::eval {

// A compiled pattern with Python-like findall and sub.
class PyRegex {
 public:
  PyRegex(const std::string& pattern, const std::string& where);
  ~PyRegex();
  PyRegex(const PyRegex&) = delete;
  PyRegex& operator=(const PyRegex&) = delete;
  // re.findall: each match as its groups (the whole match when the pattern has no group).
  std::vector<std::vector<std::string>> findall(const std::string& text) const;
  // re.sub(pattern, repl, text) with a literal replacement.
  std::string sub(const std::string& text, const std::string& repl) const;
  int capture_count() const { return captures_; }

 private:
  void* code_ = nullptr;
  int captures_ = 0;
  std::string where_;
};

// Applies a filter pipeline to one generation.
std::string apply_filter(const FilterPipeline& f, const std::string& generation);

// exact_match for one prediction/reference pair: 1 or 0.
double exact_match(const MetricConfig& m, const std::string& prediction,
                   const std::string& reference);

// Index of the first maximum (numpy.argmax).
int64_t argmax(const std::vector<double>& v);
// Number of Unicode code points in UTF-8 `s` (Python's len(str)).
int64_t count_chars(const std::string& s);
// len(re.split(r"\s+", s)): the harness's word count.
int64_t count_words(const std::string& s);

// A metric's aggregate over the samples.
struct Aggregate {
  double value = 0;
  double stderr_ = -1;  // < 0: not available ("N/A")
};
// mean (acc, exact_match, judge_score) with the standard error of the mean (sample stddev / sqrt
// n).
Aggregate aggregate_mean(const std::vector<double>& xs);
// exp(-sum(ll) / sum(units)): word_perplexity, byte_perplexity.
double weighted_perplexity(const std::vector<double>& ll, const std::vector<double>& units);
// -sum(ll) / sum(bytes) / ln 2.
double bits_per_byte(const std::vector<double>& ll, const std::vector<double>& bytes);
// perplexity (loglikelihood tasks): exp(-mean(ll)).
double perplexity(const std::vector<double>& ll);

}  // namespace reef::eval
