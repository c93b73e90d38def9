// The training data of the preference recipes (`reef align dpo`, `reef align rm`): preference
// JSONL (data/preference.h) from data.train_files, rendered with data.chat_template, else the
// model folder's template, else ChatML (as SFT chooses), as one pair per row
// (data/preference_dataset.h). Held-out pairs come from data.valid_files, or data.valid_fraction
// of the training pairs (chosen by content hash, so the split does not depend on file order).
#pragma once

#include <string>

#include "reef/config/config.h"
#include "reef/recipes/training.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct PreferenceDataOptions {
  std::string command = "align dpo";  // for messages
  int64_t max_length = 0;             // per sequence; 0: no cut (dpo: dpo.max_length)
  bool inputs_only = false;           // both sequences within data.seq_len (reward models)
  bool margins = false;               // rows carry their pair's margin (reward models)
  bool share_prompt = false;          // one copy of the prompt per row (data/preference_dataset.h)
};

TrainingData preference_data(const ResolvedConfig& rc, const Tokenizer& tokenizer,
                             const std::string& model_dir, const PreferenceDataOptions& options);

}  // namespace reef
