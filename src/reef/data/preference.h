// Preference pairs for DPO-family training, read from JSONL in TRL's formats and tokenized as
// TRL's DPOTrainer does, so that the same file gives the same token ids in both:
//
//   standard        {"prompt": "...", "chosen": "...", "rejected": "..."}: the tokenizer's eos
//                   text is appended to each answer (unless it ends with it), and
//                   tokenize(prompt), tokenize(prompt + chosen), tokenize(prompt + rejected) are
//                   taken with the tokenizer's special tokens (BOS) added;
//   conversational  the same keys holding message lists (optional "tools", and
//                   "chat_template_kwargs" as template variables): rendered with the model's chat
//                   template as SFT renders them (data/sft.h), the prompt with the generation
//                   prompt, no special tokens added, no eos appended (the template ends the turn);
//   implicit prompt {"chosen": ..., "rejected": ...} without "prompt": the shared prefix is the
//                   prompt (trl.extract_prompt: characters for strings, whole messages for
//                   conversations), then as above.
//
// The prompt's ids are the longest prefix the prompt's tokens share with both full sequences
// (trl's common_prefix_length: a template that renders the prompt alone differently, or a token
// merging across the boundary, moves the completion's start back); chosen and rejected are the
// rest of each full sequence. A row that cannot be read is an error naming file:line and the
// field, or, with skip_bad_rows, dropped and counted. An optional numeric "margin" is kept (the
// reward-model loss subtracts it, as TRL's RewardTrainer does).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reef/tokenizer/chat_template.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct PreferencePair {
  std::vector<int32_t> prompt, chosen, rejected;  // token ids; chosen/rejected: the completions
  std::string source;                             // "file.jsonl:LINE"
  double margin = 0;  // the row's optional "margin" (reward models: TRL's margin column)
};

class PreferencePairBuilder {
 public:
  // `variables`: extra chat-template variables for every pair (enable_thinking, ...).
  PreferencePairBuilder(const Tokenizer& tokenizer, ChatTemplate chat_template,
                        nlohmann::ordered_json variables = nlohmann::ordered_json::object());

  // One JSONL record; a usage error "SOURCE: field \"F\": ..." when it cannot be used.
  PreferencePair build(const nlohmann::ordered_json& record, const std::string& source) const;

  const Tokenizer& tokenizer() const { return tok_; }

 private:
  std::vector<int32_t> encode(const std::string& text, bool add_special) const;

  const Tokenizer& tok_;
  ChatTemplate template_;
  nlohmann::ordered_json variables_;
};

struct PreferenceFile {
  std::vector<PreferencePair> pairs;
  int64_t skipped = 0;            // bad rows dropped (skip_bad_rows)
  std::string first_skip_reason;  // the first of them, for the log
};

// Every record of a preference JSONL file (blank lines skipped). A malformed line or a record
// the builder rejects is a usage error naming file:line, or with `skip_bad_rows` is counted and
// dropped. `limit` < 0 reads all.
PreferenceFile read_preference_jsonl(const std::string& path, const PreferencePairBuilder& builder,
                                     bool skip_bad_rows = false, int64_t limit = -1);

// `reef data inspect --pairs`: the first `samples` pairs with the prompt, then the chosen and the
// rejected sequence, their completions (the tokens the loss counts) marked (ANSI green when
// `color`, else [[...]]), then counts over the whole file.
std::string inspect_pairs(const std::string& path, const PreferencePairBuilder& builder,
                          int samples, bool color, bool skip_bad_rows = false);

}  // namespace reef
