// A model's chat template: found where transformers looks (chat_template.jinja, then the
// `chat_template` of tokenizer_config.json, a string or a list of {name, template}), or one of
// Reef's built-in templates for tokenizers without one, and rendered exactly as
// `tokenizer.apply_chat_template(messages, tokenize=False, ...)` renders it: the same message
// clean-up (None-valued keys dropped, reasoning fields aliased), the same variables (the
// tokenizer's special tokens, tools, documents, add_generation_prompt, extra keyword variables)
// and the byte spans of {% generation %} blocks (what transformers' assistant mask covers).
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace reef {

namespace jinja {
class Template;
}

struct ChatOptions {
  bool add_generation_prompt = false;
  nlohmann::ordered_json tools;      // null: the template sees tools = None
  nlohmann::ordered_json documents;  // null: documents = None
  // Extra template variables (enable_thinking, date_string, ...); they override the special tokens.
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
};

struct ChatRender {
  std::string text;
  // [begin, end) byte offsets in `text` of each {% generation %} block's output, in order.
  std::vector<std::pair<size_t, size_t>> generation_spans;
};

class ChatTemplate {
 public:
  // `source` is Jinja; `name` prefixes errors (a file path or template name); `special_tokens`
  // maps bos_token, eos_token, ... to their text. Throws a usage error naming LINE:COL on bad
  // syntax.
  ChatTemplate(const std::string& source, const std::string& name,
               nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object());
  // Several named templates (transformers' dict form); "default" is used unless tools are passed
  // and a "tool_use" template exists.
  ChatTemplate(const std::map<std::string, std::string>& sources, const std::string& name,
               nlohmann::ordered_json special_tokens);

  // The template of a model or tokenizer folder: chat_template.jinja (plus
  // additional_chat_templates/*.jinja) or tokenizer_config.json's chat_template; special tokens
  // from tokenizer_config.json (strings or {"content": ...}) and special_tokens_map.json.
  // A usage error when the folder has none (naming the built-in fallbacks).
  static ChatTemplate from_model_dir(const std::string& dir);
  // Whether from_model_dir would find a template.
  static bool model_dir_has_template(const std::string& dir);
  // A built-in template (see builtin_template_names()) with the special tokens of `dir` when
  // given; a usage error for an unknown name.
  static ChatTemplate builtin(const std::string& name, const std::string& dir = "");
  static std::vector<std::string> builtin_template_names();
  // The folder's own template, else `fallback` ("" : none -> error): a built-in name or a .jinja
  // path.
  static ChatTemplate load(const std::string& dir, const std::string& fallback);
  // A built-in name or a .jinja path, with the special tokens of `dir` when given (whatever
  // template the folder has).
  static ChatTemplate named(const std::string& name, const std::string& dir = "");

  // Renders a conversation (a JSON array of message objects). Throws a usage error naming the
  // template for raise_exception ("NAME: raise_exception: MESSAGE") or a failing expression.
  ChatRender render(const nlohmann::ordered_json& messages, const ChatOptions& options = {}) const;

  // The text the template writes right after an assistant message's content, whitespace trimmed
  // ("<|im_end|>" for ChatML, "<|eot_id|>" for Llama 3): what ends a generated reply when the
  // tokenizer does not make it the eos token. Found by rendering a probe conversation; "" when
  // the template writes nothing there or refuses the probe.
  std::string end_of_turn() const;

  // Whether the template that render() picks (for these tools) has {% generation %} blocks.
  bool has_generation_blocks(bool with_tools = false) const;
  const std::string& name() const { return name_; }
  // The Jinja source of the default template (what tokenizer_config.json's chat_template holds).
  const std::string& source() const { return source_; }
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }

 private:
  const jinja::Template& pick(bool with_tools) const;

  std::string name_, source_;
  std::map<std::string, std::shared_ptr<const jinja::Template>> templates_;
  nlohmann::ordered_json special_tokens_;
};

// One conversation of a JSONL file rendered; `source` is "FILE:LINE".
struct RenderedConversation {
  std::string source, text;
};

// Renders every conversation of a JSONL file, one a line: {"messages": [...], "tools": [...]} or
// a list of messages; blank lines skipped. Errors (bad JSON, the template's) name FILE:LINE.
std::vector<RenderedConversation> render_conversations(const ChatTemplate& tmpl,
                                                       const std::string& jsonl_path,
                                                       const ChatOptions& options);

}  // namespace reef
