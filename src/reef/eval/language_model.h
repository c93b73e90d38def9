// What an evaluation asks of a model, in lm-evaluation-harness's three request kinds:
// loglikelihood(context, continuation), loglikelihood_rolling(text) and generate_until(context,
// until). Implemented by a local checkpoint (local_model.h) and by an OpenAI-compatible
// endpoint (endpoint.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace reef::eval {

struct LoglikelihoodResult {
  double logprob = 0;      // sum of the continuation's token log-probabilities
  bool is_greedy = false;  // every continuation token is the argmax
};

struct GenerateRequest {
  std::string context;
  std::vector<std::string> until;  // stop strings; the text is cut at the first of them
  int64_t max_gen_toks = 256;
};

// Called with the number of requests finished so far.
using ProgressFn = std::function<void(int64_t done)>;

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual std::vector<LoglikelihoodResult> loglikelihood(
      const std::vector<std::pair<std::string, std::string>>& requests,
      const ProgressFn& progress) = 0;
  virtual std::vector<double> loglikelihood_rolling(const std::vector<std::string>& texts,
                                                    const ProgressFn& progress) = 0;
  virtual std::vector<std::string> generate_until(const std::vector<GenerateRequest>& requests,
                                                  const ProgressFn& progress) = 0;
  virtual std::string describe() const = 0;  // for results.json
};

// The harness's rolling windows (utils.get_rolling_token_windows then make_disjoint_window,
// context_len 1): each (context, continuation) pair scores `continuation` given `context`; the
// first window's context is the prefix token. Every token is scored exactly once.
std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> rolling_windows(
    const std::vector<int32_t>& tokens, int32_t prefix_token, int64_t max_length);

// Cuts `text` before the first occurrence of each non-empty stop string in turn, as the
// harness's postprocess_generated_text does.
std::string cut_at_stops(std::string text, const std::vector<std::string>& until);

// `bytes` as valid UTF-8, each maximal invalid subsequence replaced by U+FFFD, as Hugging Face
// decode (Rust's String::from_utf8_lossy) returns generated text.
std::string utf8_lossy(const std::string& bytes);

// Python's str.rstrip() length: the number of trailing whitespace bytes of `s` (ASCII space
// characters and the Unicode spaces U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000).
size_t trailing_whitespace_bytes(const std::string& s);

}  // namespace reef::eval
