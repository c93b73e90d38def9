// `reef score`: a reward model (a sequence classifier with one output, from `reef align rm` or
// any Hugging Face *ForSequenceClassification folder with num_labels 1) scores every row of a
// JSONL file. Rows are tokenized exactly as the preference data are for training
// (data/preference.h), and a sequence's score is the model's output at its last token that is
// not the pad token (transformers' rule), so scores equal transformers' on the same folder:
//
//   pairs           {"prompt"?, "chosen", "rejected"} (strings or messages): both sequences are
//                   scored; the pair counts as correct when chosen scores higher
//   conversations   {"messages": [...]}: the whole conversation, rendered by the chat template
//   prompt/answer   {"prompt", "completion"}: the prompt followed by the completion
//   text            {"text": "..."}: the text with the tokenizer's BOS and eos, as a standard
//                   preference answer
//
// Each row gives one JSON line, in input order: {"line": N, "score": s} or {"line": N,
// "chosen_score": c, "rejected_score": r}.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "reef/models/causal_lm.h"
#include "reef/tokenizer/chat_template.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct ScoreOptions {
  int64_t batch_size = 8;      // sequences per forward pass
  bool skip_bad_rows = false;  // a row that cannot be read is dropped (counted), not an error
};

struct ScoreSummary {
  int64_t rows = 0;     // rows scored
  int64_t pairs = 0;    // of them, preference pairs
  int64_t correct = 0;  // pairs whose chosen answer scored higher
  int64_t skipped = 0;  // bad rows dropped (skip_bad_rows)
  double accuracy() const { return pairs > 0 ? static_cast<double>(correct) / pairs : 0.0; }
};

// Scores `input` (JSONL) with `model` (num_labels 1; a usage error otherwise), writing one line
// per row to `out`.
ScoreSummary score_jsonl(CausalLM& model, const Tokenizer& tokenizer,
                         const ChatTemplate& chat_template, const std::string& input,
                         std::ostream& out, const ScoreOptions& options);

// The scores ([N] float32) of token sequences under reward model `model`, batched
// `batch_size` at a time (padded on the right with the model's pad token).
torch::Tensor score_sequences(CausalLM& model, const std::vector<std::vector<int32_t>>& sequences,
                              int64_t batch_size);

}  // namespace reef
