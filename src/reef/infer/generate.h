// Text generation: sampling (greedy, temperature, top-k, top-p, seeded) and incremental
// decoding with a KV cache (or full recomputation each step, for checking the cache).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "reef/models/causal_lm.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
  int64_t max_new_tokens = 64;
  std::vector<std::string> stop;  // stop strings (not included in the output)
  bool use_cache = true;
  bool stop_at_eos = true;
};

struct Generation {
  std::vector<int32_t> tokens;  // generated ids (without the prompt)
  std::string text;             // decoded, cut before a stop string
  std::string finish_reason;    // "stop" (eos or stop string), "length"
};

// Picks the next id from logits [V] (float). Deterministic given `gen`'s state.
int64_t sample_next(const torch::Tensor& logits, const SamplingParams& p, torch::Generator& gen);

// Generates a continuation of `prompt` (ids). Stops at eos, a stop string, max_new_tokens or
// the model's max_seq_len.
Generation generate(CausalLM& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                    const SamplingParams& p);

}  // namespace reef
