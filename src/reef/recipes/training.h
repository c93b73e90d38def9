// What `reef pretrain` and `reef finetune` share: one training driver (process group, run folder
// guard, model from a preset or a folder, resume, trainer) over the samples each job brings.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "reef/config/config.h"
#include "reef/data/sample_index.h"
#include "reef/recipes/pretrain.h"
#include "reef/tokenizer/chat_template.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

// The training and validation samples, and the settings that shape them (kept in checkpoints).
struct TrainingData {
  std::unique_ptr<GptSampleSource> train, valid;
  nlohmann::json spec;
};

// What a training command brings to the shared driver.
struct TrainingJob {
  std::string command = "pretrain";  // for the log and messages ("align dpo")
  bool needs_model_folder = false;   // model.init_from is required
  bool peft = false;                 // cfg.peft applies
  // The model's initial weights are loaded even when resuming a full-weight run (the job's
  // prepare step reads them, e.g. as DPO's reference).
  bool initial_weights_on_resume = false;
  // The samples, read before the run folder is touched; `model_dir` is model.init_from.
  std::function<TrainingData(const ResolvedConfig&, const Tokenizer&, const std::string& model_dir)>
      data;
  // Adjusts the model's architecture once it is known (from the folder or the checkpoint) and
  // the tokenizer is loaded, before the data are read: e.g. a reward model's classifier head.
  std::function<void(const ResolvedConfig&, ModelConfig&, const Tokenizer&)> model_config;
  // Called once the model holds its initial weights, before PEFT is attached and before a
  // resume loads the checkpoint: returns the loss (null: the language-model loss).
  std::function<std::unique_ptr<Loss>(const Config&, CausalLM&, TrainingData&, ProcessGroup*)>
      prepare;
  // Called once the trainer is built (and resumed, when it is), before the run: e.g. GRPO's
  // per-step rollouts (Trainer::set_before_step). `model` carries the adapter when PEFT is on.
  std::function<void(Trainer&, CausalLM&, TrainingData&, ProcessGroup*)> ready;
};

TrainResult run_training(const ResolvedConfig& rc, const PretrainOptions& opts,
                         const TrainingJob& job);

// finetune: SFT rows from data.train_files (recipes/finetune.h) and cfg.peft; otherwise
// pretraining documents or indexed datasets.
TrainResult run_training(const ResolvedConfig& rc, const PretrainOptions& opts, bool finetune);

// The chat template that renders a data file's conversations: data.chat_template when set, else
// the model folder's own, else ChatML (said in the log). *used is recorded in the data settings:
// the name, "model" or "chatml".
ChatTemplate data_chat_template(const DataConfig& d, const std::string& model_dir,
                                std::string* used);

// The fine-tuning rows of a config: data.train_files / valid_files (or valid_fraction of the
// training records) read as SFT JSONL, rendered with the chat template of `model_dir` (or
// data.chat_template), packed or padded to data.seq_len.
TrainingData sft_data(const ResolvedConfig& rc, const Tokenizer& tokenizer,
                      const std::string& model_dir);

}  // namespace reef
