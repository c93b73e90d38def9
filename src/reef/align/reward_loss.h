// The reward-model loss (`reef align rm`) as a train/loss.h Loss, on rows of
// data/preference_dataset.h (a pair per row: segment 1 the chosen sequence, segment 2 the
// rejected one, scored by one forward pass of a sequence classifier with one output). A
// sequence's reward is the classifier's output at its last token that is not the pad token
// (transformers' *ForSequenceClassification rule, so a saved model scores the same there). As
// TRL's RewardTrainer, per micro-batch:
//
//   loss = mean(-log sigmoid(r_c - r_r - margin)) + center_rewards_coefficient * mean((r_c +
//   r_r)^2)
//
// (Bradley-Terry; margin: the rows' optional "margin", TRL's margin column), micro-batches
// averaged. Metrics as TRL names them, means over the step's pairs: accuracy (r_c > r_r), margin
// (r_c - r_r), mean_reward (over both sequences); and rewards/chosen, rewards/rejected.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "reef/config/config.h"
#include "reef/train/loss.h"

namespace reef {

// Per row of a micro-batch of preference rows: the rewards of its chosen and rejected sequences
// ([B] float32, graph kept). `logits` [B, T, 1]; `pad_id` < 0: no token counts as padding.
struct PairRewards {
  torch::Tensor chosen, rejected;
};
PairRewards pair_rewards(const torch::Tensor& logits, const TrainBatch& batch, int64_t pad_id);

// The position of each row's last token of segment `segment` that is not `pad_id` ([B] int64;
// a row without one gives its segment's last position, or 0).
torch::Tensor last_scored_position(const torch::Tensor& input_ids, const torch::Tensor& segment_ids,
                                   int64_t segment, int64_t pad_id);

std::unique_ptr<Loss> make_reward_loss(const RmConfig& cfg, const ModelConfig& model);

}  // namespace reef
