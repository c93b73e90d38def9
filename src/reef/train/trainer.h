// The training loop: micro-batches with gradient accumulation, bf16 autocast over fp32 master
// weights, clipping, AdamW with the LR schedule, periodic validation, metrics, checkpoints and
// exact resume (same per-step losses as an uninterrupted run). Given a process group it trains
// data-parallel (parallel/): each rank draws its share of the same global batch, gradients are
// all-reduced during backward, and rank 0 alone writes checkpoints, metrics and logs.
#pragma once

#include <string>

#include "reef/config/config.h"
#include <nlohmann/json.hpp>

#include "reef/data/sample_index.h"
#include "reef/models/causal_lm.h"
#include "reef/parallel/data_parallel.h"
#include "reef/parallel/mesh.h"
#include "reef/parallel/tensor_parallel.h"
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
  // The model must be built (and initialised) already; the sample sources stay owned by the
  // caller. Training draws samples 0, 1, 2, ... of `train` in order (the source shuffles);
  // validation always scores the first eval_batches micro-batches of `valid`. `data_spec` (the
  // data settings, for messages) is saved in checkpoints with the training fingerprint.
  // `pg` (several ranks): data and tensor parallelism over its ranks as cfg.parallel says
  // (the model is sharded here for tp > 1); every rank constructs its Trainer and runs it in step.
  Trainer(const Config& cfg, CausalLM model, const Tokenizer& tokenizer,
          const GptSampleSource& train, const GptSampleSource* valid,
          nlohmann::json data_spec = nlohmann::json::object(),
          std::shared_ptr<ProcessGroup> pg = nullptr);
  // Restores model, optimizer, data position and RNG from a checkpoint folder. Refuses a
  // checkpoint whose training data (fingerprint) differs from this run's.
  void resume_from(const std::string& checkpoint_dir);
  TrainResult run();
  // Mean cross-entropy over the first eval_batches micro-batches of the validation samples.
  double evaluate();

 private:
  // Samples [first, first+n) of `src` as a [n, T+1] int64 tensor on the device.
  torch::Tensor batch_from(const GptSampleSource& src, int64_t first, int64_t n) const;
  // batch [B, T+1] -> the training objective (scalar, graph kept in last_loss_): mean CE, plus
  // router_aux_loss_coef * aux for a MoE model with output_router_logits when with_aux (the
  // aux value goes to last_aux_loss_). Validation passes with_aux=false: val_loss is the LM loss.
  double forward_loss(const torch::Tensor& batch, bool with_aux);
  // Payload handed to collectives so far by this rank, over the world and its dp/tp subgroups.
  CollectiveBytes comm_bytes() const;

  Config cfg_;
  CausalLM model_;
  const Tokenizer& tokenizer_;
  const GptSampleSource& train_;
  const GptSampleSource* valid_;  // null: no validation
  nlohmann::json data_spec_;
  torch::Device device_;
  std::unique_ptr<Optimizer> optimizer_;
  int64_t step_ = 0, tokens_seen_ = 0, consumed_samples_ = 0;
  bool resumed_ = false;
  torch::Tensor last_loss_;
  double last_aux_loss_ = 0;
  // Data parallelism (null / 1 rank: none) over groups_.dp, tensor parallelism (parallel.tp > 1)
  // over groups_.tp. Rank 0 writes every file.
  std::shared_ptr<ProcessGroup> pg_;
  MeshGroups groups_;
  std::unique_ptr<TensorParallel> tp_;
  std::unique_ptr<GradientSync> grad_sync_;
  BatchShard shard_;
  bool writes_files_ = true;
};

// Sets torch's intra-op threads from run.threads (0: every core) and returns the count.
int configure_threads(int64_t threads);

}  // namespace reef
