// The DPO family as a train/loss.h Loss, on rows of data/preference_dataset.h (a pair per row:
// segment 1 the chosen sequence, segment 2 the rejected one, both scored by one forward pass).
// Per pair, the log-probs of each completion are the sums of its target tokens' log-probs (read
// through ModelOutputs::token_cross_entropy, right under tensor parallelism), and the reference's
// come with the batch (TrainBatch::values, {chosen, rejected}). As TRL's DPOTrainer (simpo as its
// CPOTrainer), with z = beta * ((pi_c - ref_c) - (pi_r - ref_r)):
//
//   sigmoid  -log sigmoid(z)                                  (DPO, Rafailov et al. 2023)
//   hinge    relu(1 - z)                                      (SLiC)
//   ipo      ((pi_c - ref_c)/n_c - (pi_r - ref_r)/n_r - 1/(2 beta))^2, n: completion tokens
//   robust   (-(1-e) log sigmoid(z) + e log sigmoid(-z)) / (1 - 2e), e = label_smoothing
//   simpo    -(1-e) log sigmoid(beta (a_c - a_r) - gamma) - e log sigmoid(-(...)), a = pi / n:
//            no reference (Meng et al. 2024)
//
// averaged over the step's pairs, plus rpo_alpha * the chosen completions' mean token NLL (RPO;
// TRL's loss_type ["sigmoid", "sft"] with weights [1, rpo_alpha]) per micro-batch. Metrics as
// TRL names them, means over the step's pairs: rewards/chosen = beta (pi_c - ref_c) (simpo:
// beta a_c), rewards/rejected, rewards/accuracies (chosen reward > rejected reward),
// rewards/margins, logps/chosen (pi_c; simpo: a_c), logps/rejected, and nll_loss when
// rpo_alpha > 0.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "reef/config/config.h"
#include "reef/train/loss.h"

namespace reef {

// Per-pair log-probs of a micro-batch of preference rows: sums over each completion's counted
// targets ([B] float32, graph kept) and their token counts ([B] float32).
struct PairLogps {
  torch::Tensor chosen, rejected;
  torch::Tensor chosen_tokens, rejected_tokens;
  torch::Tensor chosen_nll_sum;  // scalar: the chosen targets' cross-entropy summed
};
PairLogps pair_logps(const ModelOutputs& out, const TrainBatch& batch);

// Whether the loss type compares against a reference model (all but simpo).
bool dpo_uses_reference(const DpoConfig& cfg);

// `model`: a MoE model trained with output_router_logits adds router_aux_loss_coef * its
// load-balancing term per micro-batch, as TRL does.
std::unique_ptr<Loss> make_dpo_loss(const DpoConfig& cfg, const ModelConfig& model);

}  // namespace reef
