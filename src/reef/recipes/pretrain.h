// The pretraining recipe: resolves data, tokenizer and model from the config, guards the run
// folder (no silent mixing of runs), resumes from the newest checkpoint when asked, and runs
// the trainer.
#pragma once

#include "reef/config/config.h"
#include "reef/train/trainer.h"

namespace reef {

struct PretrainOptions {
  bool resume = false;     // continue from the newest checkpoint in run.dir (fresh start if none)
  bool overwrite = false;  // delete run.dir's checkpoints and metrics and start again
};

TrainResult run_pretrain(const ResolvedConfig& rc, const PretrainOptions& opts);

}  // namespace reef
