// The reward-model recipe (`reef align rm`): the model folder's decoder body with a scalar
// `score` head (a Hugging Face *ForSequenceClassification with num_labels 1; a language model
// folder gets a new head, initialised as transformers does), trained with the Bradley-Terry loss
// of align/reward_loss.h on preference pairs (recipes/preference_data.h), each pair's two
// sequences in one packed row. Checkpoints are *ForSequenceClassification folders that
// transformers loads and `reef score` reads. Full weights; the parallel layouts, resume and run
// folder are the shared driver's (recipes/training.h).
#pragma once

#include "reef/config/config.h"
#include "reef/recipes/pretrain.h"

namespace reef {

TrainResult run_reward_model(const ResolvedConfig& rc, const PretrainOptions& opts);

}  // namespace reef
