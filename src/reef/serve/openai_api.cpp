// OpenAI request parsing and response JSON (see openai_api.h). Field rules follow the OpenAI
// API reference: temperature 0..2, top_p in (0, 1], penalties -2..2, at most 4 stop strings,
// logprobs 0..20; null means "not given". top_k (0 or -1 = off) and ignore_eos are the common
// extensions (vLLM's).
#include "reef/serve/openai_api.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <random>

#include "reef/base/error.h"
#include "reef/tokenizer/hf_tokenizer.h"

namespace reef {

using json = nlohmann::json;

json error_body(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

json ApiError::body() const { return error_body(what(), type_, param_, code_); }

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

// `s` with invalid UTF-8 replaced by U+FFFD, as dump_json would write it.
std::string valid_utf8(const std::string& s) {
  return json::parse(dump_json(json(s))).get<std::string>();
}

constexpr int64_t kMaxN = 16;
constexpr int64_t kMaxLogprobs = 20;

[[noreturn]] void bad_field(const std::string& key, const std::string& expected, const json& got) {
  throw ApiError(400, fmt::format("'{}' must be {}, got {}", key, expected, dump_json(got)),
                 "invalid_request_error", key);
}

json parse_body(const std::string& text) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return body;
}

// The field, or nullptr when absent or null.
const json* get(const json& obj, const std::string& key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number(const json& obj, const std::string& key, double lo, double hi,
                             const std::string& expected) {
  const json* v = get(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number() || !(v->get<double>() >= lo && v->get<double>() <= hi)) {
    bad_field(key, expected, *v);
  }
  return v->get<double>();
}

std::optional<int64_t> integer(const json& obj, const std::string& key, int64_t lo, int64_t hi,
                               const std::string& expected) {
  const json* v = get(obj, key);
  if (!v) return std::nullopt;
  bool ok = v->is_number_integer() ||
            (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
             std::abs(v->get<double>()) < 9e18);
  if (!ok) bad_field(key, expected, *v);
  int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                  ? INT64_MAX
              : v->is_number_float() ? static_cast<int64_t>(v->get<double>())
                                     : v->get<int64_t>();
  if (x < lo || x > hi) bad_field(key, expected, *v);
  return x;
}

std::optional<bool> boolean(const json& obj, const std::string& key) {
  const json* v = get(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad_field(key, "a boolean", *v);
  return v->get<bool>();
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
std::string message_content(const json& content, size_t i) {
  const std::string key = fmt::format("messages[{}].content", i);
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad_field(key, "a string or an array of text parts", content);
  std::string out;
  for (const auto& part : content) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      bad_field(key, "text parts ({\"type\": \"text\", \"text\": ...})", part);
    }
    out += part["text"].get<std::string>();
  }
  return out;
}

// A token list: non-empty, ids in 0 .. INT32_MAX; nullopt when `v` is not an array of integers.
std::optional<std::vector<int32_t>> token_list(const json& v) {
  if (!v.is_array() || v.empty()) return std::nullopt;
  std::vector<int32_t> ids;
  for (const auto& x : v) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      return std::nullopt;
    ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
  }
  return ids;
}

constexpr int64_t kMaxPrompts = 256;

void parse_prompt(const json& body, CompletionRequest* r) {
  const json* p = get(body, "prompt");
  if (!p) throw ApiError(400, "'prompt' is required", "invalid_request_error", "prompt");
  const char* expected =
      "a string, an array of strings, an array of token ids or an array of token-id arrays";
  if (p->is_string()) {
    r->prompts.push_back({p->get<std::string>(), std::nullopt});
    return;
  }
  if (!p->is_array() || p->empty()) bad_field("prompt", expected, *p);
  if ((*p)[0].is_number()) {  // one prompt as token ids
    auto ids = token_list(*p);
    if (!ids) bad_field("prompt", expected, *p);
    r->prompts.push_back({"", std::move(ids)});
    return;
  }
  if (static_cast<int64_t>(p->size()) > kMaxPrompts) {
    throw ApiError(
        400,
        fmt::format("'prompt' holds {} prompts; at most {} per request", p->size(), kMaxPrompts),
        "invalid_request_error", "prompt");
  }
  for (size_t i = 0; i < p->size(); ++i) {
    const json& one = (*p)[i];
    if (one.is_string()) {
      r->prompts.push_back({one.get<std::string>(), std::nullopt});
    } else if (auto ids = token_list(one)) {
      r->prompts.push_back({"", std::move(ids)});
    } else {
      bad_field(fmt::format("prompt[{}]", i), "a string or a non-empty array of token ids", one);
    }
  }
}

// A message as the chat template sees it: role and content, plus an assistant's tool_calls (their
// arguments parsed from JSON text into objects, as vLLM hands them to templates) and a tool
// message's tool_call_id and name.
nlohmann::ordered_json template_message(const json& msg, size_t i) {
  const std::string key = fmt::format("messages[{}]", i);
  if (!msg.is_object()) bad_field(key, "an object with role and content", msg);
  const json* role = get(msg, "role");
  if (!role || !role->is_string()) bad_field(key + ".role", "a string", role ? *role : json());
  const json* content = get(msg, "content");
  nlohmann::ordered_json one = nlohmann::ordered_json::object();
  one["role"] = role->get<std::string>();
  one["content"] = content ? message_content(*content, i) : "";
  if (const json* calls = get(msg, "tool_calls")) {
    if (!calls->is_array()) bad_field(key + ".tool_calls", "an array", *calls);
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (size_t c = 0; c < calls->size(); ++c) {
      const json& call = (*calls)[c];
      const std::string ck = fmt::format("{}.tool_calls[{}]", key, c);
      const json* fn = call.is_object() ? get(call, "function") : nullptr;
      if (!fn || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string())
        bad_field(ck, "{\"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", call);
      nlohmann::ordered_json args = nlohmann::ordered_json::object();
      if (const json* a = get(*fn, "arguments")) {
        args = a->is_string() ? nlohmann::ordered_json::parse(a->get<std::string>(), nullptr, false)
                              : nlohmann::ordered_json::parse(a->dump());
        if (args.is_discarded()) bad_field(ck + ".function.arguments", "JSON text", *a);
      }
      nlohmann::ordered_json f = {{"name", (*fn)["name"]}, {"arguments", args}};
      nlohmann::ordered_json entry = {{"type", "function"}, {"function", f}};
      if (const json* id = get(call, "id")) entry["id"] = *id;
      out.push_back(std::move(entry));
    }
    one["tool_calls"] = std::move(out);
  }
  for (const char* k : {"tool_call_id", "name"}) {
    if (const json* v = get(msg, k)) {
      if (!v->is_string()) bad_field(key + "." + k, "a string", *v);
      one[k] = *v;
    }
  }
  return one;
}

void parse_messages(const json& body, const ChatTemplate& tmpl, CompletionRequest* r,
                    bool add_generation_prompt = true) {
  const json* m = get(body, "messages");
  if (!m) throw ApiError(400, "'messages' is required", "invalid_request_error", "messages");
  if (!m->is_array() || m->empty()) bad_field("messages", "a non-empty array of messages", *m);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < m->size(); ++i) messages.push_back(template_message((*m)[i], i));
  ChatOptions options;
  options.add_generation_prompt = add_generation_prompt;
  if (!r->tools.is_null()) options.tools = r->tools;
  try {
    r->prompts.push_back({tmpl.render(messages, options).text, std::nullopt});
  } catch (const Error& e) {  // the template's raise_exception (e.g. roles out of order)
    throw ApiError(400, e.what(), "invalid_request_error", "messages");
  }
}

// tools, tool_choice, parallel_tool_calls; the grammar that forces calls for "required" or a
// named function.
void parse_tools(const json& body, const ChatTemplate& tmpl, CompletionRequest* r) {
  const json* tools = get(body, "tools");
  const json* choice = get(body, "tool_choice");
  if (!tools) {
    if (choice && !(choice->is_string() && choice->get<std::string>() == "none"))
      throw ApiError(400, "'tool_choice' needs 'tools'", "invalid_request_error", "tool_choice");
    return;
  }
  if (!tools->is_array() || tools->empty())
    bad_field("tools", "a non-empty array of tools", *tools);
  std::vector<std::string> names;
  std::map<std::string, json> params;
  r->tools = nlohmann::ordered_json::array();
  for (size_t i = 0; i < tools->size(); ++i) {
    const json& t = (*tools)[i];
    const std::string key = fmt::format("tools[{}]", i);
    const json* fn = t.is_object() ? get(t, "function") : nullptr;
    if (!t.is_object() || t.value("type", "") != "function" || !fn || !fn->is_object() ||
        !fn->contains("name") || !(*fn)["name"].is_string())
      bad_field(key, "{\"type\": \"function\", \"function\": {\"name\", ...}}", t);
    const std::string name = (*fn)["name"].get<std::string>();
    if (params.count(name))
      throw ApiError(400, fmt::format("'tools' names the function '{}' twice", name),
                     "invalid_request_error", "tools");
    names.push_back(name);
    params[name] = fn->contains("parameters") ? (*fn)["parameters"] : json{{"type", "object"}};
    r->tools.push_back(nlohmann::ordered_json::parse(t.dump()));
  }
  r->tool_format = tmpl.source().find("<tool_call>") != std::string::npos ? "hermes" : "json";
  if (auto p = boolean(body, "parallel_tool_calls")) r->parallel_tool_calls = *p;
  std::vector<std::string> forced;  // the functions a call must name ("required"/named)
  if (choice) {
    if (choice->is_string()) {
      r->tool_choice = choice->get<std::string>();
      if (r->tool_choice != "auto" && r->tool_choice != "none" && r->tool_choice != "required")
        bad_field("tool_choice", "\"auto\", \"none\", \"required\" or a named function", *choice);
      if (r->tool_choice == "required") forced = names;
    } else if (choice->is_object() && choice->value("type", "") == "function" &&
               choice->contains("function") && (*choice)["function"].is_object() &&
               (*choice)["function"].contains("name") &&
               (*choice)["function"]["name"].is_string()) {
      r->tool_choice = (*choice)["function"]["name"].get<std::string>();
      if (!params.count(r->tool_choice))
        throw ApiError(
            400, fmt::format("tool_choice names '{}', which is not in 'tools'", r->tool_choice),
            "invalid_request_error", "tool_choice");
      forced = {r->tool_choice};
    } else {
      bad_field("tool_choice", "\"auto\", \"none\", \"required\" or a named function", *choice);
    }
  }
  if (forced.empty()) return;
  const bool hermes = r->tool_format == "hermes";
  std::vector<json> calls;
  for (const auto& name : forced) {
    calls.push_back(
        {{"type", "object"},
         {"properties",
          {{"name", {{"const", name}}}, {hermes ? "arguments" : "parameters", params[name]}}},
         {"required", {"name", hermes ? "arguments" : "parameters"}},
         {"additionalProperties", false}});
  }
  try {
    r->params.grammar =
        hermes ? JsonGrammar::wrapped(calls, "<tool_call>\n", "\n</tool_call>",
                                      r->parallel_tool_calls && forced.size() == names.size())
               : JsonGrammar::wrapped(calls, "", "", false);
  } catch (const Error& e) {
    throw ApiError(400, fmt::format("tools: {}", e.what()), "invalid_request_error", "tools");
  }
}

// response_format: {"type": "text"} (no constraint), {"type": "json_object"} or {"type":
// "json_schema", "json_schema": {"name", "schema", "strict"}}.
std::shared_ptr<const JsonGrammar> parse_response_format(const json& rf) {
  const char* expected = "an object with type \"text\", \"json_object\" or \"json_schema\"";
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
    bad_field("response_format", expected, rf);
  const std::string type = rf["type"].get<std::string>();
  if (type == "text") return nullptr;
  if (type == "json_object") return JsonGrammar::any_object();
  if (type != "json_schema") bad_field("response_format", expected, rf);
  const json* js = get(rf, "json_schema");
  if (!js || !js->is_object())
    throw ApiError(400, "'response_format.json_schema' must be an object with a schema",
                   "invalid_request_error", "response_format");
  const json* schema = get(*js, "schema");
  if (!schema)
    throw ApiError(400, "'response_format.json_schema.schema' is required", "invalid_request_error",
                   "response_format");
  try {
    return JsonGrammar::from_schema(*schema);
  } catch (const Error& e) {
    throw ApiError(400, fmt::format("response_format: {}", e.what()), "invalid_request_error",
                   "response_format");
  }
}

std::vector<std::string> parse_stop(const json& body) {
  const json* s = get(body, "stop");
  if (!s) return {};
  if (s->is_string()) return {s->get<std::string>()};
  const char* expected = "a string or an array of at most 4 strings";
  if (!s->is_array() || s->size() > 4) bad_field("stop", expected, *s);
  std::vector<std::string> out;
  for (const auto& x : *s) {
    if (!x.is_string()) bad_field("stop", expected, *s);
    out.push_back(x.get<std::string>());
  }
  return out;
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& text, bool chat,
                                           const ChatPrompting& chat_prompting) {
  const json body = parse_body(text);
  CompletionRequest r;
  r.chat = chat;
  if (const json* m = get(body, "model")) {
    if (!m->is_string()) bad_field("model", "a string", *m);
    r.model = m->get<std::string>();
  }
  if (chat) {
    parse_tools(body, *chat_prompting.chat_template, &r);
    parse_messages(body, *chat_prompting.chat_template, &r);
  } else {
    parse_prompt(body, &r);
  }
  auto& sp = r.params.sampling;
  if (!chat) r.echo = boolean(body, "echo").value_or(false);
  // max_tokens 0 only scores the prompt, which only makes sense with echo.
  r.max_tokens = integer(body, "max_tokens", r.echo ? 0 : 1, INT64_MAX,
                         r.echo ? "an integer >= 0" : "a positive integer (0 needs echo)");
  if (chat) {
    if (auto m = integer(body, "max_completion_tokens", 1, INT64_MAX, "a positive integer")) {
      r.max_tokens = m;
    }
  }
  if (auto t = number(body, "temperature", 0, 2, "a number between 0 and 2")) sp.temperature = *t;
  if (auto p = number(body, "top_p", 0, 1, "a number in (0, 1]")) {
    if (*p <= 0) bad_field("top_p", "a number in (0, 1]", body["top_p"]);
    sp.top_p = *p;
  }
  if (auto k = integer(body, "top_k", -1, INT64_MAX, "an integer >= -1 (0 or -1 = off)")) {
    sp.top_k = std::max<int64_t>(*k, 0);
  }
  if (auto n = integer(body, "n", 1, kMaxN, fmt::format("an integer from 1 to {}", kMaxN))) {
    r.params.n = *n;
  }
  if (auto s = integer(body, "seed", INT64_MIN, INT64_MAX, "an integer")) {
    r.seed = static_cast<uint64_t>(*s);
  }
  const char* penalty = "a number between -2 and 2";
  if (auto x = number(body, "presence_penalty", -2, 2, penalty)) r.params.presence_penalty = *x;
  if (auto x = number(body, "frequency_penalty", -2, 2, penalty)) r.params.frequency_penalty = *x;
  sp.stop = parse_stop(body);
  if (chat) {
    if (!chat_prompting.end_of_turn.empty()) sp.stop.push_back(chat_prompting.end_of_turn);
    const std::string range = fmt::format("an integer from 0 to {}", kMaxLogprobs);
    auto top = integer(body, "top_logprobs", 0, kMaxLogprobs, range);
    if (boolean(body, "logprobs").value_or(false)) {
      r.params.logprobs = top.value_or(0);
    } else if (top) {
      throw ApiError(400, "'top_logprobs' needs 'logprobs': true", "invalid_request_error",
                     "top_logprobs");
    }
  } else {
    const std::string range = fmt::format("an integer from 0 to {}", kMaxLogprobs);
    if (auto lp = integer(body, "logprobs", 0, kMaxLogprobs, range)) r.params.logprobs = *lp;
    if (r.echo) r.params.prompt_logprobs = r.params.logprobs;
  }
  if (boolean(body, "ignore_eos").value_or(false)) sp.stop_at_eos = false;  // vLLM's extension
  if (const json* rf = get(body, "response_format")) {
    if (r.params.grammar)
      throw ApiError(400, "response_format and a forced tool call cannot be combined",
                     "invalid_request_error", "response_format");
    r.params.grammar = parse_response_format(*rf);
  }
  r.stream = boolean(body, "stream").value_or(false);
  if (const json* so = get(body, "stream_options")) {
    if (!so->is_object()) bad_field("stream_options", "an object", *so);
    r.include_usage = boolean(*so, "include_usage").value_or(false);
  }
  return r;
}

ResponseBuilder::ResponseBuilder(const CompletionRequest& request, const std::string& model_name,
                                 const Tokenizer& tokenizer,
                                 const std::vector<std::vector<int32_t>>& prompt_ids)
    : chat_(request.chat),
      want_logprobs_(request.params.logprobs >= 0),
      model_(model_name),
      tokenizer_(tokenizer),
      prompt_ids_(prompt_ids),
      n_(request.params.n) {
  tools_ = chat_ && !request.tools.is_null() && request.tool_choice != "none";
  tool_format_ = request.tool_format;
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  id_ = fmt::format("{}-{:x}{:08x}", chat_ ? "chatcmpl" : "cmpl", rd(), counter++);
  created_ = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  for (const auto& ids : prompt_ids_) prompt_tokens_ += static_cast<int64_t>(ids.size());
  choices_.resize(prompt_ids_.size() * static_cast<size_t>(n_));
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    if (request.echo) {
      const size_t p = i / static_cast<size_t>(n_);
      const PromptInput& in = request.prompts.at(p);
      c.echo = in.ids ? tokenizer_.decode(*in.ids, true) : in.text;
    } else {
      c.echoed = true;  // nothing to echo
    }
    if (!want_logprobs_) continue;
    c.logprobs = chat_ ? json{{"content", json::array()}}
                       : json{{"tokens", json::array()},
                              {"token_logprobs", json::array()},
                              {"top_logprobs", json::array()},
                              {"text_offset", json::array()}};
  }
}

json ResponseBuilder::top_object(const std::vector<std::pair<int32_t, double>>& top, int32_t token,
                                 double logprob) const {
  json out = json::object();
  for (const auto& [id, lp] : top) {  // tokens that read alike keep the likeliest
    const std::string t = valid_utf8(tokenizer_.decode({id}, true));
    if (!out.contains(t)) out[t] = lp;
  }
  if (token >= 0) {
    const std::string t = valid_utf8(tokenizer_.decode({token}, true));
    if (!out.contains(t)) out[t] = logprob;
  }
  return out;
}

json ResponseBuilder::prompt_logprob_lists(const std::vector<int32_t>& ids,
                                           const std::vector<TokenLogprob>& lps) const {
  json lists = {{"tokens", json::array()},
                {"token_logprobs", json::array()},
                {"top_logprobs", json::array()},
                {"text_offset", json::array()}};
  int64_t offset = 0;
  for (size_t j = 0; j < ids.size(); ++j) {
    const std::string tok = tokenizer_.decode({ids[j]}, true);
    lists["tokens"].push_back(tok);
    lists["text_offset"].push_back(offset);
    offset += static_cast<int64_t>(tok.size());
    if (j == 0 || j - 1 >= lps.size()) {  // the first token is not scored
      lists["token_logprobs"].push_back(nullptr);
      lists["top_logprobs"].push_back(nullptr);
      continue;
    }
    const TokenLogprob& t = lps[j - 1];
    lists["token_logprobs"].push_back(t.logprob);
    lists["top_logprobs"].push_back(top_object(t.top, t.token, t.logprob));
  }
  return lists;
}

json ResponseBuilder::logprob_entry(const TokenEvent& e, Choice& c) const {
  auto bytes = [](const std::string& s) {
    json b = json::array();
    for (unsigned char ch : s) b.push_back(static_cast<int>(ch));
    return b;
  };
  const std::string tok = tokenizer_.decode({e.token}, true);
  if (chat_) {
    json top = json::array();
    for (const auto& [id, lp] : e.top_logprobs) {
      const std::string t = tokenizer_.decode({id}, true);
      top.push_back({{"token", t}, {"logprob", lp}, {"bytes", bytes(t)}});
    }
    json entry = {
        {"token", tok}, {"logprob", e.logprob}, {"bytes", bytes(tok)}, {"top_logprobs", top}};
    c.logprobs["content"].push_back(entry);
    return json{{"content", json::array({entry})}};
  }
  json top = top_object(e.top_logprobs, -1, 0);
  const int64_t offset = static_cast<int64_t>(c.text.size());
  c.logprobs["tokens"].push_back(tok);
  c.logprobs["token_logprobs"].push_back(e.logprob);
  c.logprobs["top_logprobs"].push_back(top);
  c.logprobs["text_offset"].push_back(offset);
  return json{{"tokens", {tok}},
              {"token_logprobs", {e.logprob}},
              {"top_logprobs", {top}},
              {"text_offset", {offset}}};
}

json ResponseBuilder::chunk(int64_t index, json delta_or_text, const json& logprobs,
                            const json& finish_reason) const {
  json choice = {{"index", index}};
  if (chat_) {
    choice["delta"] = std::move(delta_or_text);
  } else {
    choice["text"] = std::move(delta_or_text);
  }
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason;
  return {{"id", id_},
          {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
          {"created", created_},
          {"model", model_},
          {"choices", json::array({choice})}};
}

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string call_id() {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  return fmt::format("call_{:08x}{:08x}", rd(), static_cast<uint32_t>(counter++));
}

// One call from its JSON object, or null when it is not {"name": string, args: object}.
json call_from(const json& obj, const char* args_key) {
  if (!obj.is_object() || !obj.contains("name") || !obj["name"].is_string()) return nullptr;
  json args = obj.contains(args_key) ? obj[args_key] : json::object();
  if (args.is_string()) args = json::parse(args.get<std::string>(), nullptr, false);
  if (!args.is_object()) return nullptr;
  return {{"id", call_id()},
          {"type", "function"},
          {"function", {{"name", obj["name"]}, {"arguments", dump_json(args)}}}};
}

}  // namespace

json parse_tool_calls(const std::string& text, const std::string& format, std::string* rest) {
  json calls = json::array();
  rest->clear();
  if (format == "json") {
    const json obj = json::parse(trim(text), nullptr, false);
    json call = obj.is_discarded() ? json(nullptr) : call_from(obj, "parameters");
    if (call.is_null() && !obj.is_discarded()) call = call_from(obj, "arguments");
    if (call.is_null()) {
      *rest = text;
    } else {
      calls.push_back(std::move(call));
    }
    return calls;
  }
  const std::string open = "<tool_call>", close = "</tool_call>";
  size_t at = 0;
  while (true) {
    const size_t b = text.find(open, at);
    if (b == std::string::npos) break;
    const size_t e = text.find(close, b + open.size());
    if (e == std::string::npos) break;
    const json obj = json::parse(text.substr(b + open.size(), e - b - open.size()), nullptr, false);
    json call = obj.is_discarded() ? json(nullptr) : call_from(obj, "arguments");
    if (call.is_null()) {  // not a call after all: it stays text
      *rest += text.substr(at, e + close.size() - at);
    } else {
      *rest += text.substr(at, b - at);
      calls.push_back(std::move(call));
    }
    at = e + close.size();
  }
  *rest += text.substr(at);
  *rest = calls.empty() ? text : trim(*rest);
  return calls;
}

void ResponseBuilder::finish_tool_calls(Choice& c) const {
  std::string rest;
  json calls = parse_tool_calls(c.text, tool_format_, &rest);
  if (calls.empty()) return;
  c.tool_calls = std::move(calls);
  c.text = rest;
}

std::vector<json> ResponseBuilder::add(const TokenEvent& e) {
  Choice& c = choices_.at(static_cast<size_t>(e.index));
  std::vector<json> out;
  if (tools_) {
    // Text streams until it may be a call (a "<tool_call>" or its start; for the JSON format
    // a "{" first); from there it is held back until the calls can be read.
    if (want_logprobs_ && e.token >= 0) logprob_entry(e, c);
    c.text += e.text;
    if (!c.holding) {
      size_t safe = c.text.size();
      if (tool_format_ == "hermes") {
        const std::string open = "<tool_call>";
        const size_t at = c.text.find(open);
        if (at != std::string::npos) {
          safe = at;
          c.holding = true;
        } else {
          for (size_t len = std::min(open.size() - 1, c.text.size()); len > 0; --len) {
            if (c.text.compare(c.text.size() - len, len, open, 0, len) == 0) {
              safe = c.text.size() - len;
              break;
            }
          }
        }
      } else {
        const size_t first = c.text.find_first_not_of(" \t\r\n");
        if (first == std::string::npos) {
          safe = 0;  // only whitespace so far: a call may follow
        } else if (c.text[first] == '{' && c.streamed == 0) {
          safe = 0;
          c.holding = true;
        }
      }
      if (safe > c.streamed && !e.finished) {
        json delta = {{"content", c.text.substr(c.streamed, safe - c.streamed)}};
        if (!c.role_sent) delta["role"] = "assistant";
        c.role_sent = true;
        out.push_back(chunk(e.index, delta, nullptr, nullptr));
        c.streamed = safe;
      }
    }
    if (!e.finished) return out;
    c.finish_reason = e.finish_reason;
    c.completion_tokens = e.completion_tokens;
    // The stream's last delta: what was held back (text and calls); the whole response: all.
    // (The streamed part holds no call: streaming stops where one may begin.)
    std::string rest;
    parse_tool_calls(c.text.substr(c.streamed), tool_format_, &rest);
    finish_tool_calls(c);
    json delta = json::object();
    if (!c.role_sent) delta["role"] = "assistant";
    c.role_sent = true;
    if (!rest.empty()) delta["content"] = rest;
    if (!c.tool_calls.is_null()) {
      json calls = json::array();
      for (size_t i = 0; i < c.tool_calls.size(); ++i) {
        json call = c.tool_calls[i];
        call["index"] = i;
        calls.push_back(std::move(call));
      }
      delta["tool_calls"] = std::move(calls);
      c.finish_reason = "tool_calls";
    }
    json lp = want_logprobs_ ? c.logprobs : json(nullptr);
    if (!delta.empty() || !lp.is_null()) out.push_back(chunk(e.index, delta, lp, nullptr));
    out.push_back(chunk(e.index, json::object(), nullptr, c.finish_reason));
    return out;
  }
  if (!c.echoed) {  // the prompt leads: its text, and its logprobs when asked
    c.echoed = true;
    json logprobs = nullptr;
    if (want_logprobs_) {
      logprobs = prompt_logprob_lists(prompt_ids_.at(static_cast<size_t>(e.index / n_)),
                                      e.prompt_logprobs);
      for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
        for (const auto& v : logprobs[key]) c.logprobs[key].push_back(v);
      }
    }
    c.text = c.echo;
    out.push_back(chunk(e.index, c.echo, logprobs, nullptr));
  }
  json logprobs = nullptr;
  if (want_logprobs_ && e.token >= 0) logprobs = logprob_entry(e, c);
  c.text += e.text;
  if (!e.text.empty() || !logprobs.is_null()) {
    json delta = e.text;
    if (chat_) {
      delta = json{{"content", e.text}};
      if (!c.role_sent) delta["role"] = "assistant";
      c.role_sent = true;
    }
    out.push_back(chunk(e.index, delta, logprobs, nullptr));
  }
  if (e.finished) {
    c.finish_reason = e.finish_reason;
    c.completion_tokens = e.completion_tokens;
    json delta = chat_ ? json::object() : json("");
    if (chat_ && !c.role_sent) delta["role"] = "assistant";
    c.role_sent = true;
    // Completions list a sampled eos among the output's logprobs, as vLLM does (its text is not
    // in the output): a scoring client that drops the last entry (lm-eval) relies on it.
    json final_logprobs = nullptr;
    if (want_logprobs_ && !chat_ && e.eos_token >= 0) {
      TokenEvent eos = e;
      eos.token = e.eos_token;
      eos.logprob = e.eos_logprob;
      final_logprobs = logprob_entry(eos, c);
    }
    out.push_back(chunk(e.index, delta, final_logprobs, e.finish_reason));
  }
  return out;
}

json ResponseBuilder::usage() const {
  int64_t completion = 0;
  for (const auto& c : choices_) completion += c.completion_tokens;
  return {{"prompt_tokens", prompt_tokens_},
          {"completion_tokens", completion},
          {"total_tokens", prompt_tokens_ + completion}};
}

json ResponseBuilder::usage_chunk() const {
  return {{"id", id_},
          {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
          {"created", created_},
          {"model", model_},
          {"choices", json::array()},
          {"usage", usage()}};
}

json ResponseBuilder::response() const {
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    json choice = {{"index", i}};
    if (chat_ && !c.tool_calls.is_null()) {
      choice["message"] = {{"role", "assistant"},
                           {"content", c.text.empty() ? json(nullptr) : json(c.text)},
                           {"tool_calls", c.tool_calls}};
    } else if (chat_) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = want_logprobs_ ? c.logprobs : json(nullptr);
    choice["finish_reason"] = c.finish_reason;
    choices.push_back(choice);
  }
  return {{"id", id_},           {"object", chat_ ? "chat.completion" : "text_completion"},
          {"created", created_}, {"model", model_},
          {"choices", choices},  {"usage", usage()}};
}

namespace {

// A special token's text, or null when the tokenizer has none.
json special_text(const Tokenizer& tokenizer, int32_t id) {
  if (id < 0 || id >= tokenizer.vocab_size()) return nullptr;
  return valid_utf8(tokenizer.decode({id}, true));
}

}  // namespace

json tokenize_response(const std::string& text, const Tokenizer& tokenizer,
                       const ChatPrompting& chat_prompting, int64_t max_model_len) {
  const json body = parse_body(text);
  std::string prompt;
  bool add_special = true;
  if (get(body, "messages")) {
    CompletionRequest r;
    const bool generation_prompt = boolean(body, "add_generation_prompt").value_or(true);
    parse_tools(body, *chat_prompting.chat_template, &r);
    parse_messages(body, *chat_prompting.chat_template, &r, generation_prompt);
    prompt = r.prompts.at(0).text;
    add_special = false;  // the template writes its own special tokens
  } else {
    const json* p = get(body, "prompt");
    if (!p) throw ApiError(400, "'prompt' or 'messages' is required", "invalid_request_error");
    if (!p->is_string()) bad_field("prompt", "a string", *p);
    prompt = p->get<std::string>();
  }
  add_special = boolean(body, "add_special_tokens").value_or(add_special);
  const std::vector<int32_t> ids = encode_like_transformers(tokenizer, prompt, add_special);
  json strs = nullptr;
  if (boolean(body, "return_token_strs").value_or(false)) {
    strs = json::array();
    for (int32_t id : ids) strs.push_back(valid_utf8(tokenizer.decode({id}, true)));
  }
  return {{"count", ids.size()},
          {"max_model_len", max_model_len},
          {"tokens", ids},
          {"token_strs", strs}};
}

json detokenize_response(const std::string& text, const Tokenizer& tokenizer) {
  const json body = parse_body(text);
  const json* t = get(body, "tokens");
  if (!t) throw ApiError(400, "'tokens' is required", "invalid_request_error", "tokens");
  std::vector<int32_t> ids;
  if (!t->empty()) {
    auto list = token_list(*t);
    if (!list) bad_field("tokens", "an array of token ids", *t);
    ids = std::move(*list);
  } else if (!t->is_array()) {
    bad_field("tokens", "an array of token ids", *t);
  }
  for (int32_t id : ids) {
    if (id >= tokenizer.vocab_size()) {
      throw ApiError(
          400,
          fmt::format("token id {} is outside the vocabulary of {}", id, tokenizer.vocab_size()),
          "invalid_request_error", "tokens");
    }
  }
  return {{"prompt", valid_utf8(tokenizer.decode(ids, true))}};
}

json tokenizer_info(const Tokenizer& tokenizer, const ChatPrompting& chat_prompting,
                    int64_t max_model_len) {
  const std::string& tmpl =
      chat_prompting.chat_template ? chat_prompting.chat_template->source() : std::string();
  return {{"tokenizer_class", tokenizer.name()},
          {"bos_token", special_text(tokenizer, tokenizer.bos_id())},
          {"eos_token", special_text(tokenizer, tokenizer.eos_id())},
          {"pad_token", special_text(tokenizer, tokenizer.pad_id())},
          {"chat_template", tmpl.empty() ? json(nullptr) : json(tmpl)},
          {"model_max_length", max_model_len},
          {"vocab_size", tokenizer.vocab_size()}};
}

json model_list(const std::string& model_name, int64_t created) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model_name},
                                 {"object", "model"},
                                 {"created", created},
                                 {"owned_by", "reef"}}})}};
}

}  // namespace reef
