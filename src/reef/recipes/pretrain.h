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

// With model.init_from (a Hugging Face model folder) the model's architecture is the folder's
// config.json, its weights are loaded strictly before step 0, and its tokenizer is used unless
// data.tokenizer is set explicitly (a folder without tokenizer files keeps "byte"); the
// tokenizer may not have more tokens than the folder's vocab_size. --resume with a checkpoint
// takes weights and architecture from that checkpoint and never rereads the folder's weights.
//
// The ModelConfig of model folder `dir` (model.init_from, or a checkpoint of such a run), with
// init_from and preset kept from rc. Every model key the config sets explicitly (file, preset or
// command line) must agree with the folder (an "auto"/0 value agrees when it resolves to the
// folder's); otherwise a usage error names the key, its value and origin, and the folder's value.
ModelConfig model_config_from_folder(const ResolvedConfig& rc, const std::string& dir);

TrainResult run_pretrain(const ResolvedConfig& rc, const PretrainOptions& opts);

}  // namespace reef
