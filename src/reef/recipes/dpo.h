// The DPO recipe (`reef align dpo`): preference pairs (data/preference.h) from data.train_files,
// one pair per row (data/preference_dataset.h), the DPO-family loss of cfg.dpo
// (align/dpo_loss.h) on the shared train step, and the reference log-probs computed once from
// the initial weights (with peft.method=lora: the base model before the adapter is attached) and
// cached beside the run (align/reference.h). Full weights or LoRA; the run folder, resume,
// checkpoints and parallel layouts are the pretraining driver's (recipes/training.h).
#pragma once

#include "reef/config/config.h"
#include "reef/recipes/pretrain.h"

namespace reef {

TrainResult run_dpo(const ResolvedConfig& rc, const PretrainOptions& opts);

}  // namespace reef
