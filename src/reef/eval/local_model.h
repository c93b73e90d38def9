// A local checkpoint as an evaluation model, mirroring lm-evaluation-harness's HFLM: contexts
// and continuations tokenized as it does (trailing context spaces moved to the continuation, the
// whole string encoded and split at the context's length), log-probabilities in float32, rolling
// windows of max_length tokens, greedy generation. Multiple-choice continuations share one
// forward pass of their context through the KV cache, then are scored together in one batch.
#pragma once

#include <memory>
#include <string>

#include "reef/eval/language_model.h"
#include "reef/models/causal_lm.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef::eval {

struct LocalModelOptions {
  int64_t batch_size = 8;  // sequences per forward pass (rolling windows, unshared requests)
  int64_t max_length = 0;  // 0: the model's max_seq_len, as HFLM reads max_position_embeddings
};

class LocalModel : public LanguageModel {
 public:
  LocalModel(CausalLM model, std::unique_ptr<Tokenizer> tokenizer, std::string name,
             LocalModelOptions opts);

  std::vector<LoglikelihoodResult> loglikelihood(
      const std::vector<std::pair<std::string, std::string>>& requests,
      const ProgressFn& progress) override;
  std::vector<double> loglikelihood_rolling(const std::vector<std::string>& texts,
                                            const ProgressFn& progress) override;
  std::vector<std::string> generate_until(const std::vector<GenerateRequest>& requests,
                                          const ProgressFn& progress) override;
  std::string describe() const override { return name_; }

  // HFLM's tok_encode: the tokenizer's own special tokens (HF encode's default) unless the
  // text already starts with the prefix token's text.
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens = true) const;
  // HFLM's _encode_pair (and the empty-context rule of loglikelihood).
  std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(
      const std::string& context, const std::string& continuation) const;
  int32_t prefix_token() const;
  int64_t max_length() const { return max_length_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

  // Scores token-level requests: each pair's continuation given its context, the input left-
  // truncated to max_length as HFLM does. Batched by batch_size, right-padded.
  std::vector<LoglikelihoodResult> score_tokens(
      const std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>>& requests);

 private:
  // Continuations of one shared context: the context runs once into the KV cache.
  std::vector<LoglikelihoodResult> score_shared_context(
      const std::vector<int32_t>& context, const std::vector<std::vector<int32_t>>& continuations);

  CausalLM model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string name_;
  LocalModelOptions opts_;
  int64_t max_length_ = 0;
  torch::Device device_;
};

}  // namespace reef::eval
