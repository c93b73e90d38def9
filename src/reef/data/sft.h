// Supervised fine-tuning samples: a conversation (OpenAI-style `messages`, optional `tools`) or a
// `prompt`/`completion` pair rendered with the model's chat template and tokenized, with a loss
// mask that is 1 exactly on the tokens the model must learn to produce: each assistant reply and
// the end-of-turn token the template puts after it.
//
// Where the assistant text is: the template's {% generation %} blocks when it has them (the
// spans transformers' return_assistant_tokens_mask uses), otherwise prefix rendering: for
// assistant message i, render(messages[:i], add_generation_prompt) must be a prefix of
// render(messages[:i+1]), which must prefix the whole conversation; the reply is what lies
// between (trailing whitespace after the end-of-turn token excluded). A template that gives no
// assistant span, a span boundary that cuts a token (other than through whitespace), or a mask
// that covers everything is an error naming the sample (file:line), never a silent mask.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reef/tokenizer/chat_template.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct SftSample {
  std::vector<int32_t> input_ids;
  std::vector<uint8_t> loss_mask;  // same length; 1: a supervised (assistant) token
  std::string source;              // where the record came from, "file.jsonl:LINE"
  int64_t supervised_tokens() const;
};

class SftSampleBuilder {
 public:
  // `variables`: extra chat-template variables for every sample (enable_thinking, ...).
  SftSampleBuilder(const Tokenizer& tokenizer, ChatTemplate chat_template,
                   nlohmann::ordered_json variables = nlohmann::ordered_json::object());

  // One JSONL record: {"messages": [...], "tools": [...]?} or {"prompt": ..., "completion": ...}
  // where both are strings (loss on the completion and an appended eos) or both are message
  // lists (rendered with the template; loss on what the completion adds). Errors name `source`.
  SftSample build(const nlohmann::ordered_json& record, const std::string& source) const;

  // The rendered conversation and its assistant byte spans, before tokenization (for inspection).
  struct Rendered {
    std::string text;
    std::vector<std::pair<size_t, size_t>> spans;
  };
  Rendered render_messages(const nlohmann::ordered_json& messages,
                           const nlohmann::ordered_json& tools, const std::string& source) const;

  const Tokenizer& tokenizer() const { return tok_; }
  const ChatTemplate& chat_template() const { return template_; }

 private:
  SftSample from_spans(const Rendered& r, const std::string& source) const;
  SftSample from_text_pair(const std::string& prompt, const std::string& completion,
                           const std::string& source) const;
  std::vector<int32_t> encode(const std::string& text, bool add_special) const;

  const Tokenizer& tok_;
  ChatTemplate template_;
  nlohmann::ordered_json variables_;
};

// `reef data inspect --sft`: the first `samples` samples of an SFT JSONL file with the supervised
// tokens marked (ANSI green when `color`, else [[...]]), then counts over the whole file: samples,
// tokens, supervised tokens and their share, the longest sample.
std::string inspect_sft(const std::string& path, const SftSampleBuilder& builder, int samples,
                        bool color);

// Every record of an SFT JSONL file (blank lines skipped), `limit` < 0 for all. A malformed line
// or a sample the builder rejects is a usage error naming file:line.
std::vector<SftSample> read_sft_jsonl(const std::string& path, const SftSampleBuilder& builder,
                                      int64_t limit = -1);

}  // namespace reef
