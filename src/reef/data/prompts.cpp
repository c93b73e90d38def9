// Implementation of data/prompts.h.
#include "reef/data/prompts.h"

#include "reef/base/error.h"
#include "reef/base/json_file.h"
#include "reef/tokenizer/hf_tokenizer.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

[[noreturn]] void bad_field(const std::string& source, const char* field, const std::string& why) {
  usage_error("{}: field \"{}\": {}", source, field, why);
}

PromptRow build(const ojson& record, const std::string& source, const Tokenizer& tok,
                const ChatTemplate& tmpl) {
  if (!record.is_object())
    usage_error("{}: expected a JSON object with prompt or messages", source);
  const bool has_prompt = record.contains("prompt"), has_messages = record.contains("messages");
  if (has_prompt == has_messages)
    usage_error("{}: expected exactly one of \"prompt\" (text) and \"messages\" (a conversation)",
                source);
  PromptRow row;
  row.source = source;
  if (has_prompt) {
    const ojson& p = record["prompt"];
    if (!p.is_string() || p.get<std::string>().empty())
      bad_field(source, "prompt", "expected a non-empty string");
    row.text = p.get<std::string>();
    row.ids = encode_like_transformers(tok, row.text, true);
  } else {
    const ojson& m = record["messages"];
    if (!m.is_array() || m.empty())
      bad_field(source, "messages", "expected a non-empty list of {\"role\", \"content\"} objects");
    for (const auto& msg : m)
      if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
        bad_field(source, "messages", "every message needs a \"role\" string");
    ChatOptions o;
    o.add_generation_prompt = true;
    try {
      row.text = tmpl.render(m, o).text;
    } catch (const Error& e) {
      bad_field(source, "messages", std::string("the chat template refused it: ") + e.what());
    }
    row.ids = encode_like_transformers(tok, row.text, false);
    row.messages = m;
  }
  if (row.ids.empty()) bad_field(source, has_prompt ? "prompt" : "messages", "no tokens");
  if (record.contains("metadata")) {
    if (!record["metadata"].is_object()) bad_field(source, "metadata", "expected an object");
    row.metadata = record["metadata"];
  } else {
    row.metadata = ojson::object();
    for (const auto& [k, v] : record.items())
      if (k != "prompt" && k != "messages") row.metadata[k] = v;
  }
  return row;
}

}  // namespace

PromptFile read_prompt_jsonl(const std::string& path, const Tokenizer& tokenizer,
                             const ChatTemplate& chat_template, bool skip_bad_rows) {
  PromptFile out;
  auto skip = [&](const std::string& why) {
    if (out.skipped++ == 0) out.first_skip_reason = why;
  };
  for_each_jsonl_record(
      path,
      [&](ojson record, const std::string& source) {
        try {
          out.rows.push_back(build(record, source, tokenizer, chat_template));
        } catch (const Error& e) {
          if (!skip_bad_rows || e.kind() != ErrorKind::kUsage) throw;
          skip(e.what());
        }
        return true;
      },
      skip_bad_rows ? std::function<void(const std::string&)>(skip) : nullptr);
  return out;
}

}  // namespace reef
