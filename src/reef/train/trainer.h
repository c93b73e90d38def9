// The training loop: micro-batches with gradient accumulation, bf16 autocast over fp32 master
// weights, clipping, AdamW with the LR schedule, periodic validation, metrics, checkpoints and
// exact resume (same per-step losses as an uninterrupted run).
#pragma once

#include <string>

#include "reef/config/config.h"
#include "reef/data/documents.h"
#include "reef/models/causal_lm.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/optim.h"

namespace reef {

struct TrainResult {
  int64_t start_step = 0, end_step = 0;
  double initial_val_loss = NAN;  // before the first step (fresh runs only)
  double final_val_loss = NAN;
  double final_train_loss = NAN;
  double tokens_per_s = 0, mfu = 0;
  std::string last_checkpoint;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM after saving a checkpoint
};

class Trainer {
 public:
  // The model must be built (and initialised) already; the streams stay owned by the caller.
  Trainer(const Config& cfg, CausalLM model, const Tokenizer& tokenizer, const TokenStream& train,
          const TokenStream& valid);
  // Restores model, optimizer, data position and RNG from a checkpoint folder.
  void resume_from(const std::string& checkpoint_dir);
  TrainResult run();
  // Mean cross-entropy over the first eval_batches micro-batches of the validation stream.
  double evaluate();

 private:
  torch::Tensor batch_from(const TokenStream& s, const std::vector<int64_t>& starts) const;
  double forward_loss(const torch::Tensor& batch);  // [B, T+1] -> mean CE (scalar, graph kept)

  Config cfg_;
  CausalLM model_;
  const Tokenizer& tokenizer_;
  const TokenStream& train_;
  const TokenStream& valid_;
  torch::Device device_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<WindowSampler> sampler_;
  int64_t step_ = 0, tokens_seen_ = 0;
  bool resumed_ = false;
  torch::Tensor last_loss_;
};

// Sets torch's intra-op threads from run.threads (0: every core) and returns the count.
int configure_threads(int64_t threads);

}  // namespace reef
