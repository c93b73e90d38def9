// Prompt JSONL for online methods (`reef align grpo`): each line a {"prompt": "text"} or a
// {"messages": [...]} conversation to continue, plus free data for the reward: the "metadata"
// object, or, without one, every other field of the line (so SFT-style {"prompt", "completion"}
// rows give their completion as the expected answer). A string prompt is tokenized as is (the
// tokenizer's special tokens added, as TRL does); messages are rendered with the chat template
// and its generation prompt.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reef/tokenizer/chat_template.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct PromptRow {
  std::vector<int32_t> ids;         // what the model is given
  std::string text;                 // the prompt as text (the rendered template for messages)
  nlohmann::ordered_json messages;  // the conversation when given as messages; else null
  nlohmann::ordered_json metadata;  // free data for the environments (an object)
  std::string source;               // "file.jsonl:LINE"
};

struct PromptFile {
  std::vector<PromptRow> rows;
  int64_t skipped = 0;            // bad rows dropped (skip_bad_rows)
  std::string first_skip_reason;  // the first of them, for the log
};

// Every record of a prompt JSONL file. A bad record is a usage error "file:LINE: field \"F\":
// ..." or, with skip_bad_rows, dropped and counted.
PromptFile read_prompt_jsonl(const std::string& path, const Tokenizer& tokenizer,
                             const ChatTemplate& chat_template, bool skip_bad_rows = false);

}  // namespace reef
