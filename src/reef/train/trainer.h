// The training loop: micro-batches with gradient accumulation, bf16 autocast over fp32 master
// weights, clipping, AdamW with the LR schedule, periodic validation, metrics, checkpoints and
// exact resume (same per-step losses as an uninterrupted run). Given a process group it trains
// data-parallel (parallel/): each rank draws its share of the same global batch, gradients are
// all-reduced during backward, and rank 0 alone writes checkpoints, metrics and logs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "reef/config/config.h"
#include "reef/data/sample_index.h"
#include "reef/models/causal_lm.h"
#include "reef/parallel/data_parallel.h"
#include "reef/parallel/fsdp.h"
#include "reef/parallel/mesh.h"
#include "reef/parallel/pipeline.h"
#include "reef/parallel/tensor_parallel.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/checkpointing.h"
#include "reef/train/optim.h"
#include "reef/train/peft.h"

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
  // `pg` (several ranks): data, tensor and pipeline parallelism over its ranks as cfg.parallel
  // says (the model is sharded here for tp > 1, cut to this rank's stage for pp > 1); every
  // rank constructs its Trainer and runs it in step. `peft` (train/peft.h, already attached to the
  // model): only its parameters train, and checkpoints hold the adapter instead of the model.
  //
  // Samples with a layout (SFT rows, data/sft_dataset.h) bring their loss mask, positions and
  // packing segments. The loss of a step is the sum of cross-entropy over every counted target
  // of the step (all micro-batches, all ranks) divided by their number, so neither gradient
  // accumulation nor packing nor the world size reweights a token.
  Trainer(const Config& cfg, CausalLM model, const Tokenizer& tokenizer,
          const GptSampleSource& train, const GptSampleSource* valid,
          nlohmann::json data_spec = nlohmann::json::object(),
          std::shared_ptr<ProcessGroup> pg = nullptr, std::shared_ptr<Peft> peft = nullptr);
  // Restores model, optimizer, data position and RNG from a checkpoint folder. Refuses a
  // checkpoint whose training data (fingerprint) differs from this run's.
  void resume_from(const std::string& checkpoint_dir);
  TrainResult run();
  // Mean cross-entropy per counted target over the first eval_batches micro-batches of the
  // validation samples.
  double evaluate();

 private:
  struct Batch {
    torch::Tensor inputs;        // [B, T] int64
    torch::Tensor targets;       // [B, T] int64; kIgnoreTarget where the loss does not count
    torch::Tensor position_ids;  // [B, T], with segment_ids: packed samples; else undefined
    torch::Tensor segment_ids;
    int64_t n_targets = 0;  // counted targets
  };
  // Samples [first, first+n) of `src` on the device.
  Batch batch_from(const GptSampleSource& src, int64_t first, int64_t n) const;
  // Counted targets of samples [first, first+n) of `src` (reads layouts only).
  int64_t count_targets(const GptSampleSource& src, int64_t first, int64_t n) const;
  // Forward pass of `batch`; returns the sum of CE over its counted targets. The objective
  // (scalar, graph kept in last_loss_) is ce_scale * that sum, plus, when with_aux for a MoE model
  // with output_router_logits, aux_scale * router_aux_loss_coef * aux (the aux value goes to
  // last_aux_loss_). Validation passes with_aux=false: val_loss is the LM loss.
  double forward_loss(const Batch& batch, bool with_aux, double ce_scale, double aux_scale);
  // Payload handed to collectives so far by this rank, over the world and its dp/tp subgroups.
  CollectiveBytes comm_bytes() const;
  // Summed cross-entropy of logits [B, T, V] (tensor parallel: this rank's vocab slice) against
  // targets [B, T] over the counted targets.
  torch::Tensor ce_sum(const torch::Tensor& logits, const torch::Tensor& targets);
  // The parameters as this rank holds them (tensor / pipeline parallelism), for distributed
  // checkpoints.
  std::vector<ShardedParam> sharded_params() const;

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
  Mesh mesh_;
  std::unique_ptr<Pipeline> pipeline_;  // parallel.pp > 1: this rank's stage of model_
  MeshGroups groups_;                   // parallel.pp == 1: the dp and tp groups
  std::unique_ptr<TensorParallel> tp_;  // parallel.tp > 1
  std::unique_ptr<GradientSync> grad_sync_;
  std::unique_ptr<Fsdp> fsdp_;  // parallel.zero=3 with dp > 1: parameters sharded over groups_.dp
  BatchShard shard_;
  bool writes_files_ = true;
  int dp_ = 1;  // data-parallel ranks (the gradient all-reduce averages over them)
  std::shared_ptr<Peft> peft_;
};

}  // namespace reef
