// ChatTemplate: where transformers finds a template, what apply_chat_template passes to it, and
// Reef's built-in fallbacks (written with {% generation %} so their assistant spans are exact).
#include "reef/tokenizer/chat_template.h"

#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"
#include "reef/base/strings.h"
#include "reef/tokenizer/jinja_template.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

const char* const kSpecialTokenKeys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                         "pad_token", "cls_token", "mask_token"};

ojson read_json(const std::string& path) {
  try {
    return ojson::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    usage_error("{}: not valid JSON: {}", path, e.what());
  }
}

// A token given as "text" or as an AddedToken dict {"content": "text", ...}.
std::string token_text(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

ojson special_tokens_of(const std::string& dir) {
  ojson out = ojson::object();
  for (const char* file : {"tokenizer_config.json", "special_tokens_map.json"}) {
    std::string path = join_path(dir, file);
    if (!path_exists(path)) continue;
    ojson cfg = read_json(path);
    if (!cfg.is_object()) continue;
    for (const char* key : kSpecialTokenKeys) {
      if (out.contains(key) || !cfg.contains(key)) continue;
      std::string t = token_text(cfg[key]);
      if (!t.empty()) out[key] = t;
    }
  }
  return out;
}

// transformers' order: chat_template.jinja (+ additional_chat_templates/) over the config entry.
std::map<std::string, std::string> find_sources(const std::string& dir) {
  std::map<std::string, std::string> sources;
  std::string file = join_path(dir, "chat_template.jinja");
  if (path_exists(file)) sources["default"] = read_file(file);
  std::string extra = join_path(dir, "additional_chat_templates");
  if (is_directory(extra))
    for (const std::string& name : list_dir(extra))
      if (ends_with(name, ".jinja"))
        sources[name.substr(0, name.size() - 6)] = read_file(join_path(extra, name));
  if (!sources.empty()) return sources;
  std::string config = join_path(dir, "tokenizer_config.json");
  if (!path_exists(config)) return sources;
  ojson cfg = read_json(config);
  if (!cfg.is_object() || !cfg.contains("chat_template")) return sources;
  const ojson& ct = cfg["chat_template"];
  if (ct.is_string()) {
    sources["default"] = ct.get<std::string>();
  } else if (ct.is_array()) {
    for (const ojson& t : ct) {
      if (!t.is_object() || !t.contains("name") || !t.contains("template") ||
          !t["name"].is_string() || !t["template"].is_string())
        usage_error("{}: chat_template list entries must be {{\"name\": ..., \"template\": ...}}",
                    config);
      sources[t["name"].get<std::string>()] = t["template"].get<std::string>();
    }
  } else if (!ct.is_null()) {
    usage_error("{}: chat_template must be a string or a list of {{name, template}}", config);
  }
  return sources;
}

// Reef's fallbacks for tokenizers without a template: the published layouts of each family,
// with the assistant's text and end-of-turn token inside {% generation %}.
const std::map<std::string, std::string>& builtins() {
  static const std::map<std::string, std::string> kBuiltins = {
      {"chatml",
       "{%- for message in messages %}"
       "{{- '<|im_start|>' + message['role'] + '\\n' }}"
       "{%- if message['role'] == 'assistant' %}"
       "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}"
       "{%- else %}{{- message['content'] + '<|im_end|>\\n' }}{%- endif %}"
       "{%- endfor %}"
       "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"},
      {"llama3",
       "{{- bos_token }}"
       "{%- for message in messages %}"
       "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
       "{%- if message['role'] == 'assistant' %}"
       "{%- generation %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endgeneration %}"
       "{%- else %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endif %}"
       "{%- endfor %}"
       "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' "
       "}}{%- endif %}"},
      {"gemma",
       "{{- bos_token }}"
       "{%- for message in messages %}"
       "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
       "{{- '<start_of_turn>' + role + '\\n' }}"
       "{%- if message['role'] == 'assistant' %}"
       "{%- generation %}{{- message['content'] | trim + '<end_of_turn>' }}{%- endgeneration %}{{- "
       "'\\n' }}"
       "{%- else %}{{- message['content'] | trim + '<end_of_turn>\\n' }}{%- endif %}"
       "{%- endfor %}"
       "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"},
      {"mistral",
       "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
       "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- "
       "endif %}"
       "{{- bos_token }}"
       "{%- for message in loop_messages %}"
       "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
       "{{- raise_exception('After the optional system message, conversation roles must alternate "
       "user/assistant/user/assistant/...') }}{%- endif %}"
       "{%- if message['role'] == 'user' %}"
       "{%- if loop.first and system_message is defined %}"
       "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
       "{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
       "{%- elif message['role'] == 'assistant' %}"
       "{%- generation %}{{- ' ' + message['content'] + eos_token }}{%- endgeneration %}"
       "{%- else %}{{- raise_exception('Only user and assistant roles are supported, with the "
       "exception of an initial optional system message!') }}{%- endif %}"
       "{%- endfor %}"},
  };
  return kBuiltins;
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source, const std::string& name, ojson special_tokens)
    : ChatTemplate(std::map<std::string, std::string>{{"default", source}}, name,
                   std::move(special_tokens)) {}

ChatTemplate::ChatTemplate(const std::map<std::string, std::string>& sources,
                           const std::string& name, ojson special_tokens)
    : name_(name), special_tokens_(std::move(special_tokens)) {
  auto def = sources.find("default");
  source_ = def != sources.end() ? def->second : sources.empty() ? "" : sources.begin()->second;
  for (const auto& [k, src] : sources)
    templates_[k] =
        std::make_shared<jinja::Template>(src, sources.size() == 1 ? name : name + "[" + k + "]");
  if (templates_.empty()) usage_error("{}: no chat template", name);
}

ChatTemplate ChatTemplate::from_model_dir(const std::string& dir) {
  auto sources = find_sources(dir);
  if (sources.empty()) {
    std::string names;
    for (const auto& n : builtin_template_names()) names += (names.empty() ? "" : ", ") + n;
    usage_error(
        "{}: no chat template (no chat_template.jinja, no chat_template in "
        "tokenizer_config.json); choose a built-in one ({}) or a .jinja file",
        dir, names);
  }
  std::string name = path_exists(join_path(dir, "chat_template.jinja"))
                         ? join_path(dir, "chat_template.jinja")
                         : join_path(dir, "tokenizer_config.json");
  return ChatTemplate(sources, name, special_tokens_of(dir));
}

bool ChatTemplate::model_dir_has_template(const std::string& dir) {
  return !find_sources(dir).empty();
}

ChatTemplate ChatTemplate::builtin(const std::string& name, const std::string& dir) {
  auto it = builtins().find(name);
  if (it == builtins().end()) {
    std::string names;
    for (const auto& n : builtin_template_names()) names += (names.empty() ? "" : ", ") + n;
    usage_error("unknown chat template '{}' (built-in: {})", name, names);
  }
  return ChatTemplate(it->second, "builtin:" + name,
                      dir.empty() ? ojson::object() : special_tokens_of(dir));
}

std::vector<std::string> ChatTemplate::builtin_template_names() {
  std::vector<std::string> out;
  for (const auto& kv : builtins()) out.push_back(kv.first);
  return out;
}

ChatTemplate ChatTemplate::load(const std::string& dir, const std::string& fallback) {
  if (!dir.empty() && model_dir_has_template(dir)) return from_model_dir(dir);
  if (fallback.empty()) return from_model_dir(dir);  // the error naming the choices
  return named(fallback, dir);
}

ChatTemplate ChatTemplate::named(const std::string& name, const std::string& dir) {
  if (ends_with(name, ".jinja")) {
    if (!path_exists(name)) usage_error("chat template file '{}' does not exist", name);
    return ChatTemplate(read_file(name), name,
                        dir.empty() ? ojson::object() : special_tokens_of(dir));
  }
  return builtin(name, dir);
}

const jinja::Template& ChatTemplate::pick(bool with_tools) const {
  if (templates_.size() == 1) return *templates_.begin()->second;
  if (with_tools) {
    auto it = templates_.find("tool_use");
    if (it != templates_.end()) return *it->second;
  }
  auto it = templates_.find("default");
  if (it == templates_.end())
    usage_error("{}: several chat templates and none named 'default'", name_);
  return *it->second;
}

std::string ChatTemplate::end_of_turn() const {
  static const std::string kProbe = "\x01reef-probe\x01";  // text no template writes itself
  ojson messages = ojson::array();
  messages.push_back(ojson::object({{"role", "user"}, {"content", "hi"}}));
  messages.push_back(ojson::object({{"role", "assistant"}, {"content", kProbe}}));
  std::string text;
  try {
    text = render(messages).text;
  } catch (const Error&) {
    return "";
  }
  const size_t at = text.rfind(kProbe);
  if (at == std::string::npos) return "";
  std::string after = text.substr(at + kProbe.size());
  const auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  size_t b = 0, e = after.size();
  while (b < e && is_space(after[b])) ++b;
  while (e > b && is_space(after[e - 1])) --e;
  return after.substr(b, e - b);
}

bool ChatTemplate::has_generation_blocks(bool with_tools) const {
  return pick(with_tools).has_generation_blocks();
}

ChatRender ChatTemplate::render(const ojson& messages, const ChatOptions& options) const {
  if (!messages.is_array()) usage_error("{}: messages must be a JSON array", name_);
  // apply_chat_template drops None-valued keys and aliases the reasoning fields
  // (reasoning_content, thinking, reasoning) so that templates reading any of them see it.
  jinja::List msgs;
  for (const ojson& m : messages) {
    if (!m.is_object())
      usage_error("{}: every message must be a JSON object, got {}", name_, m.dump());
    ojson clean = ojson::object();
    for (const auto& [k, v] : m.items())
      if (!v.is_null()) clean[k] = v;
    for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
      if (!clean.contains(key)) continue;
      ojson r = clean[key];
      ojson aliased = ojson::object();
      aliased["thinking"] = r;
      for (const auto& [k, v] : clean.items()) aliased[k] = v;
      aliased["reasoning_content"] = r;
      clean = std::move(aliased);
      break;
    }
    msgs.push_back(jinja::Value::from_json(clean));
  }
  jinja::Dict vars;
  for (const auto& [k, v] : special_tokens_.items()) vars.set(k, jinja::Value::from_json(v));
  if (!options.variables.is_null()) {
    if (!options.variables.is_object())
      usage_error("{}: template variables must be a JSON object", name_);
    for (const auto& [k, v] : options.variables.items()) vars.set(k, jinja::Value::from_json(v));
  }
  vars.set("messages", jinja::Value::list(std::move(msgs)));
  vars.set("tools", jinja::Value::from_json(options.tools));
  vars.set("documents", jinja::Value::from_json(options.documents));
  vars.set("add_generation_prompt", jinja::Value(options.add_generation_prompt));
  jinja::RenderResult r = pick(!options.tools.is_null()).render(vars);
  return ChatRender{std::move(r.text), std::move(r.generation_spans)};
}

std::vector<RenderedConversation> render_conversations(const ChatTemplate& tmpl,
                                                       const std::string& jsonl_path,
                                                       const ChatOptions& options) {
  std::vector<RenderedConversation> rendered;
  for_each_jsonl_record(jsonl_path, [&](ojson rec, const std::string& source) {
    ChatOptions o = options;
    ojson messages = rec;
    if (rec.is_object()) {
      if (!rec.contains("messages"))
        usage_error("{}: expected {{\"messages\": [...]}} or a list of messages", source);
      messages = rec["messages"];
      if (rec.contains("tools")) o.tools = rec["tools"];
    }
    try {
      rendered.push_back({source, tmpl.render(messages, o).text});
    } catch (const Error& e) {
      throw Error(source + ": " + e.what(), e.kind());
    }
    return true;
  });
  return rendered;
}

}  // namespace reef
