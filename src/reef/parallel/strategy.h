// One interface for every parallel layout, applied to a built model from outside (torchtitan's
// parallelize_llama, adapted): parallelize() turns a CausalLM, the run's config and its process
// group into a Strategy, and the train step, validation and checkpoints speak only to that.
//
//   one process, DDP, ZeRO-1, tensor (+ sequence) parallel, dp x tp:  ReplicatedStrategy
//   ZeRO-3 / FSDP (dp only):                                          FsdpStrategy
//   pipeline stages (x tp, x dp, ZeRO-1 inside the stages):           PipelineStrategy
//
// Each composes the parallel pieces (GradientSync, TensorParallel, Fsdp, Pipeline, the sharded
// Optimizer) and answers the same questions: run a step's micro-batches forward and backward
// with a given loss, complete the gradients, clip their global norm, step the optimizer, and
// describe the rank's state as sharded tensors (global shape and the slice it holds) for one
// checkpointer to save and load in any layout.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reef/config/config.h"
#include "reef/models/causal_lm.h"
#include "reef/parallel/mesh.h"
#include "reef/parallel/optimizer.h"
#include "reef/parallel/process_group.h"

namespace reef {

class TensorParallel;

// The model inputs of one micro-batch.
struct MicroBatch {
  torch::Tensor input_ids;                  // [B, T] int64
  torch::Tensor position_ids, segment_ids;  // [B, T] packed rows (nn/packing.h); else undefined
  torch::Tensor prefix_embeds;              // [P, C] prompt tuning's virtual tokens; or undefined
  // [B, T] bool: the positions whose logits the loss reads (its counted targets); undefined:
  // every position. A layout may compute logits for these only (ModelOutputs::positions).
  torch::Tensor head_positions;
};

// What the model produced for a micro-batch, and the vocabulary-wide reductions a loss needs,
// done right for the layout (tensor parallelism holds a vocab slice of the logits and never
// gathers them). Losses read logits only through these.
struct ModelOutputs {
  torch::Tensor logits;    // [B, T, V], or this rank's vocab slice [B, T, V/tp]; prefix removed
  torch::Tensor aux_loss;  // MoE load-balancing term (float32 scalar), undefined when none
  TensorParallel* tp = nullptr;
  // When defined ([B, T] bool, the micro-batch's head_positions), logits are [N, V] for the
  // marked positions only, in row-major order; the reductions below give 0 elsewhere.
  torch::Tensor positions;

  // Next-token cross-entropy per position (float32 [B, T]; 0 where targets is kIgnoreTarget),
  // of the logits divided by `temperature` (GRPO scores the policy at its sampling temperature).
  torch::Tensor token_cross_entropy(const torch::Tensor& targets, double temperature = 1.0) const;
  // The entropy of the next-token distribution (logits / temperature) per position (float32
  // [B, T]; 0 at positions the head did not compute). Not under tensor parallelism.
  torch::Tensor token_entropy(double temperature = 1.0) const;
  // The sum of token_cross_entropy(targets) (float32 scalar).
  torch::Tensor cross_entropy_sum(const torch::Tensor& targets) const;
  // log(sum(exp(logits))) over the whole vocabulary per position (float32 [B, T]).
  torch::Tensor token_logsumexp() const;
};

// One parameter as this rank holds it: its part of the whole tensor and who else holds the same
// part (for distributed checkpoints, which spread the writing over the replicas).
struct ShardedParam {
  std::string name;                   // the whole model's name
  torch::Tensor local;                // this rank's part: the parameter itself
  std::vector<int64_t> global_shape;  // the whole tensor's shape
  std::vector<int64_t> offsets;       // where `local` starts in it (empty: all zeros)
  // The ranks holding this same part: each lists the parameters of one `replicas` tag in the
  // same order, and the tag's parts are spread over them by size (replica_index: this rank).
  std::string replicas = "all";
  int replica_index = 0, n_replicas = 1;
  bool write = true;              // false: another rank's copy is the one written (a tied copy)
  bool write_zero_slices = true;  // ZeRO-1: whether this rank writes its slices of the moments
};

// The whole model's state gathered for a consolidated checkpoint. `model` is set on the rank
// that writes (world rank 0), null elsewhere; `release` (when set) frees what was gathered.
struct Consolidated {
  CausalLM model{nullptr};
  NamedParams optimizer_state;  // "<param>.exp_avg" / ".exp_avg_sq", parameter order
  int64_t optimizer_step = 0;
  std::function<void()> release;
};

class Strategy {
 public:
  // Micro-batch m of the current step (or of a validation pass).
  using BatchFn = std::function<MicroBatch(int64_t m)>;
  // The objective of micro-batch m from its outputs: the scalar to backpropagate, already
  // scaled for the step (called where the outputs exist: the last pipeline stage).
  using LossFn = std::function<torch::Tensor(const ModelOutputs&, int64_t m)>;
  // Reads the outputs of micro-batch m (validation).
  using OutputsFn = std::function<void(const ModelOutputs&, int64_t m)>;

  Strategy(CausalLM model, const Config& cfg, std::shared_ptr<ProcessGroup> world, Mesh mesh);
  virtual ~Strategy();
  Strategy(const Strategy&) = delete;
  Strategy& operator=(const Strategy&) = delete;

  // "dp=2 tp=1 pp=1 zero=1", for the startup line.
  std::string describe() const;
  const Mesh& mesh() const { return mesh_; }
  int rank() const { return world_ ? world_->rank() : 0; }
  int world_size() const { return world_ ? world_->size() : 1; }
  ProcessGroup* world() const { return world_.get(); }
  CausalLM& model() { return model_; }
  Optimizer& optimizer() { return *optimizer_; }
  // The data-parallel rank and its share of the global batch.
  const BatchShard& shard() const { return shard_; }
  // The factor the gradient reduction divides by (data-parallel ranks), which a loss
  // normalised over the whole step's targets multiplies back.
  int gradient_average() const { return mesh_.dp; }

  // Forward and backward of the step's micro-batches 0..n-1 (each shard().micro_batch_size rows
  // of seq_len tokens); gradients accumulate. Every rank calls it.
  virtual void forward_backward(int64_t n, int64_t seq_len, const BatchFn& batch,
                                const LossFn& loss) = 0;
  // Forward only, no graph: micro-batch m has rows[m] sequences. Every rank calls it.
  virtual void forward_only(const std::vector<int64_t>& rows, int64_t seq_len, const BatchFn& batch,
                            const OutputsFn& read) = 0;
  // After the step's backward passes: completes every gradient (all-reduces, partial sums),
  // clips the global L2 norm of the whole model's gradients to max_norm (0: no clipping) and
  // returns it before clipping. A collective.
  virtual double finish_gradients(double max_norm) = 0;
  void step() { optimizer_->step(); }

  // The rank's parameters as sharded tensors (distributed checkpoints, any layout's resume).
  virtual std::vector<ShardedParam> sharded_params() const;
  // Parameter pieces held outside the module (FSDP's flat slices); saved and loaded as they are.
  virtual std::vector<FlatPiece> flat_pieces() const { return {}; }
  // The whole model and optimizer state on world rank 0 (a collective); with_optimizer false
  // leaves the optimizer state out.
  virtual Consolidated consolidate(bool with_optimizer);
  // Whether micro-batches may carry packed rows or prompt-tuning vectors (the pipeline's
  // stages take plain token rows only).
  virtual bool supports_packed_rows() const { return true; }

  // Payload handed to collectives so far by this rank (the world and its sub-groups).
  virtual CollectiveBytes bytes() const;
  // Whether reduce-scatters are part of this layout (FSDP, sequence parallelism).
  virtual bool reduce_scatters() const { return false; }
  // Sums `t` over every rank of the run (nothing with one process).
  void all_reduce_sum(torch::Tensor& t) const;

 protected:
  // Runs `f` under bf16 autocast when train.precision is bf16.
  void forward_scope(const std::function<void()>& f) const;
  // The model's forward on one micro-batch, its outputs for a loss.
  ModelOutputs forward(const MicroBatch& b, TensorParallel* tp);

  CausalLM model_;
  Config cfg_;
  c10::DeviceType device_type_;  // run.device's
  std::shared_ptr<ProcessGroup> world_;
  Mesh mesh_;
  BatchShard shard_;
  std::unique_ptr<Optimizer> optimizer_;
};

// The layout cfg.parallel asks for over `world` (null: one process): shards `model` in place
// (tensor parallel slices, pipeline stage, FSDP units), makes the initial weights identical on
// every rank, and builds the optimizer over `trainable` (the parameters that train, by name:
// the model's when empty; PEFT passes its adapter's). A collective: every rank calls it.
std::unique_ptr<Strategy> parallelize(CausalLM model, const Config& cfg,
                                      std::shared_ptr<ProcessGroup> world,
                                      NamedParams trainable = {});

}  // namespace reef
