// Rollouts for online methods (GRPO): completions sampled from the live policy by Reef's own
// continuous-batching engine (infer/engine.h) in this process — no second server, no weight
// copy — and the generation batch as training rows: each row a prompt and one completion, its
// counted targets the completion's tokens, its values the loss's per-row numbers (advantage,
// log-probs at generation, reference log-probs: align/grpo_loss.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "reef/data/sample_index.h"
#include "reef/infer/engine.h"
#include "reef/models/causal_lm.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/loss.h"

namespace reef {

struct Completion {
  std::vector<int32_t> tokens;   // the generated ids, ending with the eos id when it was sampled
  std::vector<double> logprobs;  // the engine's log-softmax of the raw logits per token
  std::string text;              // decoded, cut before a stop string
  bool truncated = false;        // stopped by the length limit
};

struct RolloutOptions {
  int64_t group = 1;        // completions per prompt
  SamplingParams sampling;  // temperature, top_k, top_p, max_new_tokens, stop
  EngineOptions engine;     // slots, KV budget (slot_len is set from the prompts)
};

// `group` completions of each prompt, prompt j's at [j * group, (j + 1) * group); prompt j's
// sequence i samples with seed seeds[j] + i, so a batch is reproducible from its seeds whatever
// the engine's slot count. The model is left in eval mode.
std::vector<Completion> generate_completions(CausalLM& model, const Tokenizer& tokenizer,
                                             const std::vector<std::vector<int32_t>>& prompts,
                                             const std::vector<uint64_t>& seeds,
                                             const RolloutOptions& options);

// One training row: a prompt and one completion.
struct RolloutRow {
  std::vector<int32_t> tokens;  // prompt + completion (at most seq_len + 1)
  int64_t prompt_len = 0;
  bool counted = true;        // false: the completion takes no part in the loss (masked, dropped)
  std::vector<float> values;  // GptSampleSource::values (the loss's numbers)
};

// Rows as samples: sample i is rows[i], right-padded with pad_id to seq_len + 1 tokens.
class RolloutView : public GptSampleSource {
 public:
  RolloutView(const std::vector<RolloutRow>& rows, int64_t seq_len, int32_t pad_id)
      : rows_(rows), seq_len_(seq_len), pad_id_(pad_id) {}
  int64_t num_samples() const override { return static_cast<int64_t>(rows_.size()); }
  int64_t seq_len() const override { return seq_len_; }
  void sample(int64_t i, std::vector<int32_t>* out) const override;
  bool layout(int64_t i, SampleLayout* out) const override;
  bool values(int64_t i, std::vector<float>* out) const override;
  uint64_t fingerprint() const override { return 0; }
  bool trailing_padding() const override { return true; }

 protected:
  virtual const RolloutRow& row(int64_t i) const { return rows_.at(static_cast<size_t>(i)); }

 private:
  const std::vector<RolloutRow>& rows_;
  int64_t seq_len_;
  int32_t pad_id_;
};

// The training source of an online run: step s reads its rows_per_step samples
// [s * rows_per_step, (s + 1) * rows_per_step) from slice `slice` of the current generation
// batch (set_step), whatever s is; the batch is replaced every generation.
class RolloutRows : public RolloutView {
 public:
  RolloutRows(int64_t seq_len, int32_t pad_id, int64_t num_samples, int64_t rows_per_step,
              uint64_t fingerprint)
      : RolloutView(batch_, seq_len, pad_id),
        num_samples_(num_samples),
        rows_per_step_(rows_per_step),
        fingerprint_(fingerprint) {}
  int64_t num_samples() const override { return num_samples_; }
  uint64_t fingerprint() const override { return fingerprint_; }
  std::vector<RolloutRow>& batch() { return batch_; }
  void set_step(int64_t step, int64_t slice) {
    step_ = step;
    slice_ = slice;
  }

 private:
  const RolloutRow& row(int64_t i) const override;
  std::vector<RolloutRow> batch_;
  int64_t num_samples_, rows_per_step_;
  uint64_t fingerprint_;
  int64_t step_ = 0, slice_ = 0;
};

// Each row's per-position log-probs of its tokens (logits / temperature) under `model`, in
// micro-batches of `micro_batch` rows laid out as training lays them (so the numbers are the
// train step's), written to row.values[offset + t] for input position t (0 elsewhere; seq_len
// values from offset). No gradients; bf16: under autocast, as the train step computes.
void fill_token_logps(CausalLM& model, std::vector<RolloutRow>& rows, int64_t seq_len,
                      int32_t pad_id, int64_t micro_batch, double temperature, size_t offset,
                      bool bf16);

}  // namespace reef
