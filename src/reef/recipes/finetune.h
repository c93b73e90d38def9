// The fine-tuning recipe (`reef finetune`): supervised fine-tuning of a model folder on chat or
// prompt/completion JSONL, every weight or a PEFT method (cfg.peft: LoRA, prompt tuning), with
// the loss on the assistant tokens only and samples packed without attending across each other.
// It shares the pretraining driver (recipes/training.h): the same run folder rules, resume,
// parallelism, metrics and checkpoints; PEFT checkpoints hold peft-layout adapters.
#pragma once

#include "reef/config/config.h"
#include "reef/recipes/pretrain.h"

namespace reef {

// model.init_from is required (a Hugging Face folder, or a Reef checkpoint/run folder resolved
// by the caller). data.train_files are SFT JSONL files (data/sft.h); data.valid_files, or else
// data.valid_fraction of the training records (chosen by content hash), are validation.
TrainResult run_finetune(const ResolvedConfig& rc, const PretrainOptions& opts);

}  // namespace reef
