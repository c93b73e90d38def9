// The reference log-probs of DPO: what the frozen initial policy (or, with LoRA, the base model
// before the adapter is attached: the adapter switched off, no second copy of the weights)
// gives each pair's chosen and rejected completion. They are computed once, before the first
// step, in fp32 (under bf16 autocast when the run trains in bf16, as the policy's forward is),
// and cached on disk keyed by the pairs' tokens, the reference's weights and the precision, so
// later epochs, resumes and reruns never recompute them; the train step reads them with each
// row (PreferenceRows::values), which makes cached and online references the same numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reef/data/preference_dataset.h"
#include "reef/models/causal_lm.h"
#include "reef/parallel/process_group.h"

namespace reef {

struct ReferenceLogps {
  std::vector<float> chosen, rejected;  // per pair of the data (dropped pairs: NaN)
  std::string path;                     // the cache file
  bool from_cache = false;
};

// xxh64 over every parameter and buffer of `model` (names, shapes and fp32 values).
uint64_t weights_fingerprint(CausalLM& model);

// Every used pair of `rows` scored by `model` as it is now, `batch_size` pairs per forward.
ReferenceLogps compute_reference_logps(CausalLM& model, const PreferenceRows& rows,
                                       int64_t batch_size, const torch::Device& device,
                                       bool bf16 = false);

// The cache file under `dir` for these pairs and this reference: read when present (a file of
// another size is an error), else computed and written atomically (by rank 0 of `pg`, which the
// other ranks wait for).
ReferenceLogps cached_reference_logps(CausalLM& model, const PreferenceRows& rows,
                                      const std::string& dir, int64_t batch_size,
                                      const torch::Device& device, ProcessGroup* pg = nullptr,
                                      bool bf16 = false);

}  // namespace reef
