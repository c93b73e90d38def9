// Built-in chat templates (see chat_template.h).
#include "reef/serve/chat_template.h"

#include "reef/base/error.h"

namespace reef {

std::string ChatMLTemplate::render(const std::vector<ChatMessage>& messages) const {
  std::string out;
  for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  return out + "<|im_start|>assistant\n";
}

std::unique_ptr<ChatTemplate> make_chat_template(const std::string& name) {
  if (name == "chatml") return std::make_unique<ChatMLTemplate>();
  usage_error("unknown chat template '{}'; built in: chatml", name);
}

}  // namespace reef
