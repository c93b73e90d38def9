// Chat templates: how /v1/chat/completions turns a list of messages into prompt text. The
// interface is small so that a real Jinja chat-template interpreter (tokenizer_config.json's
// "chat_template") can be plugged in later; until then the server uses the built-in ChatML
// layout, which every model sees the same way:
//
//   <|im_start|>system\nYou are terse.<|im_end|>\n
//   <|im_start|>user\nHi!<|im_end|>\n
//   <|im_start|>assistant\n
//
// The markers are plain text (Reef's tokenizers do not parse special-token text), and
// "<|im_end|>" is added to the request's stop strings so a reply ends at its own end marker.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace reef {

struct ChatMessage {
  std::string role;  // system, user, assistant (or tool, developer: passed through)
  std::string content;
};

class ChatTemplate {
 public:
  virtual ~ChatTemplate() = default;
  virtual std::string name() const = 0;
  // The prompt text for `messages`, ending where the assistant's reply starts.
  virtual std::string render(const std::vector<ChatMessage>& messages) const = 0;
  // Stop strings every chat request gets (the end-of-turn marker).
  virtual std::vector<std::string> stop_strings() const = 0;
};

class ChatMLTemplate : public ChatTemplate {
 public:
  std::string name() const override { return "chatml"; }
  std::string render(const std::vector<ChatMessage>& messages) const override;
  std::vector<std::string> stop_strings() const override { return {"<|im_end|>"}; }
};

// The built-in template by name: "chatml". Throws reef::Error(kUsage) for another name.
std::unique_ptr<ChatTemplate> make_chat_template(const std::string& name);

}  // namespace reef
