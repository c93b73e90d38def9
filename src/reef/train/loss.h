// The objective of a training method, as the train step sees it: a Loss turns a micro-batch's
// model outputs (parallel/strategy.h's ModelOutputs, whose vocabulary-wide reductions are right
// for every parallel layout) and its targets into the scalar to backpropagate and the metrics
// to log. A new method (DPO, a reward model, GRPO) is a new Loss plus a recipe; the train step,
// checkpoints and every parallel layout come with it unchanged.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reef/config/config.h"
#include "reef/parallel/strategy.h"

namespace reef {

// A training micro-batch: the model's inputs and what the loss compares against.
struct TrainBatch {
  MicroBatch inputs;
  torch::Tensor targets;  // [B, T] int64; kIgnoreTarget where the loss does not count
  int64_t n_targets = 0;  // counted targets
  torch::Tensor values;   // [B, K] float32: the samples' GptSampleSource::values; or undefined
};

// What a step's objective is normalised by: every counted target of the step (all
// micro-batches, all ranks) weighs the same, whatever the accumulation, packing or world size.
struct StepTotals {
  int64_t targets = 0;        // counted targets of the whole step over all ranks
  int64_t micro_batches = 0;  // this rank's micro-batches in the step
  int gradient_average = 1;   // the ranks the gradient reduction averages over (dp)
};

struct LossResult {
  torch::Tensor objective;  // scalar to backpropagate (graph kept)
  // Each metric's share of the step's value: summed over the step's micro-batches and its
  // data-parallel ranks it gives the logged number (the ranks of a tensor-parallel group hold
  // the same share).
  std::map<std::string, double> metrics;
};

class Loss {
 public:
  virtual ~Loss() = default;
  // The metrics compute() reports, in a fixed order ("loss" first): every rank reduces them
  // together, including the pipeline stages that hold no outputs.
  virtual std::vector<std::string> metric_names() const = 0;
  virtual LossResult compute(const ModelOutputs& out, const TrainBatch& batch,
                             const StepTotals& step) const = 0;
  // Whether validation scores this loss and its metrics on the validation samples (logged as
  // val_loss and eval_<metric>, TRL's eval names) instead of the language-model cross-entropy.
  virtual bool scores_validation() const { return false; }
  // Whether compute() reads the logits only at the batch's counted targets, and only through
  // ModelOutputs' reductions: the layout may then skip the LM head elsewhere
  // (MicroBatch::head_positions).
  virtual bool reads_logits_at_targets_only() const { return false; }
};

// The language-model loss of pretraining and SFT: the sum of next-token cross-entropy over the
// step's counted targets divided by their number (transformers' Trainer with
// num_items_in_batch), plus the MoE load-balancing term (router_aux_loss_coef, averaged over
// micro-batches) when the model uses it, plus train.z_loss * log(Z)^2 per counted target.
// Metrics: "loss" (the cross-entropy), "aux_loss" and "z_loss" (before their coefficients).
std::unique_ptr<Loss> make_lm_loss(const Config& cfg, const ModelConfig& model);

}  // namespace reef
