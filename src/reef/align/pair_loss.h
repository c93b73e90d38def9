// What the preference losses (align/dpo_loss.h, align/reward_loss.h) share on the train step:
// TRL's normalisation — a micro-batch's loss is the mean over its pairs, micro-batches are
// averaged and data-parallel ranks averaged by the gradient reduction — the MoE load-balancing
// term added per micro-batch, and metrics that are means over the step's pairs.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "reef/config/config.h"
#include "reef/train/loss.h"

namespace reef {

// One micro-batch of pairs as a method computed it.
struct PairTerms {
  torch::Tensor loss;  // scalar: the mean over the micro-batch's pairs (graph kept); "loss"
  // Further metrics: per-pair values (or a scalar), each averaged over the micro-batch.
  std::vector<std::pair<std::string, torch::Tensor>> metrics;
};

// The objective and metric shares of `terms` for `step`; `aux_coef` weighs out.aux_loss.
LossResult pair_loss_result(const PairTerms& terms, const ModelOutputs& out, const StepTotals& step,
                            double aux_coef);

// router_aux_loss_coef when the model trains with the load-balancing term, else 0.
double router_aux_coefficient(const ModelConfig& model);

}  // namespace reef
