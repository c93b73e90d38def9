// The GRPO recipe (`reef align grpo`): prompts (data/prompts.h) from data.train_files; every
// grpo.steps_per_generation x grpo.num_iterations optimizer steps, a generation batch of
// train.micro_batch_size x train.grad_accum x grpo.steps_per_generation completions
// (grpo.num_generations per prompt) sampled by the engine from the policy's live weights
// (align/rollouts.h; with LoRA the adapter is applied), scored by the environments of
// grpo.rewards (align/environment.h), turned into group-relative advantages and trained on with
// GRPO's loss (align/grpo_loss.h) on the shared train step. The reference (grpo.beta > 0) is
// the initial weights: a frozen copy, or with LoRA the same model with the adapter off. Each
// generation batch is written to run.dir/rollouts/ (with grpo.save_rollouts), which is also what
// a resume in the middle of a batch reads back, so a killed run continues with the same rows;
// prompts and sampling seeds follow from run.seed and the batch's index alone.
#pragma once

#include "reef/config/config.h"
#include "reef/recipes/pretrain.h"

namespace reef {

TrainResult run_grpo(const ResolvedConfig& rc, const PretrainOptions& opts);

}  // namespace reef
