// OpenAI request parsing and response JSON (see openai_api.h). Field rules follow the OpenAI
// API reference: temperature 0..2, top_p in (0, 1], penalties -2..2, at most 4 stop strings,
// logprobs 0..20; null means "not given". top_k (0 or -1 = off) and ignore_eos are the common
// extensions (vLLM's).
#include "reef/serve/openai_api.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <random>

#include "reef/base/error.h"

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

void parse_prompt(const json& body, CompletionRequest* r) {
  const json* p = get(body, "prompt");
  if (!p) throw ApiError(400, "'prompt' is required", "invalid_request_error", "prompt");
  if (p->is_string()) {
    r->prompt = p->get<std::string>();
    return;
  }
  if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    r->prompt = (*p)[0].get<std::string>();
    return;
  }
  if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
    std::vector<int32_t> ids;
    for (const auto& x : *p) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX) {
        bad_field("prompt", "a string, one string in an array, or an array of token ids", *p);
      }
      ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
    }
    r->prompt_ids = std::move(ids);
    return;
  }
  if (p->is_array() && p->size() > 1) {
    throw ApiError(400, "'prompt' holds several prompts; this server takes one per request",
                   "invalid_request_error", "prompt");
  }
  bad_field("prompt", "a string, one string in an array, or an array of token ids", *p);
}

void parse_messages(const json& body, const ChatTemplate& tmpl, CompletionRequest* r) {
  const json* m = get(body, "messages");
  if (!m) throw ApiError(400, "'messages' is required", "invalid_request_error", "messages");
  if (!m->is_array() || m->empty()) bad_field("messages", "a non-empty array of messages", *m);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string key = fmt::format("messages[{}]", i);
    if (!msg.is_object()) bad_field(key, "an object with role and content", msg);
    const json* role = get(msg, "role");
    if (!role || !role->is_string()) bad_field(key + ".role", "a string", role ? *role : json());
    const json* content = get(msg, "content");
    nlohmann::ordered_json one = nlohmann::ordered_json::object();
    one["role"] = role->get<std::string>();
    one["content"] = content ? message_content(*content, i) : "";
    messages.push_back(std::move(one));
  }
  ChatOptions options;
  options.add_generation_prompt = true;
  try {
    r->prompt = tmpl.render(messages, options).text;
  } catch (const Error& e) {  // the template's raise_exception (e.g. roles out of order)
    throw ApiError(400, e.what(), "invalid_request_error", "messages");
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
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  if (const json* m = get(body, "model")) {
    if (!m->is_string()) bad_field("model", "a string", *m);
    r.model = m->get<std::string>();
  }
  if (chat) {
    parse_messages(body, *chat_prompting.chat_template, &r);
  } else {
    parse_prompt(body, &r);
  }
  auto& sp = r.params.sampling;
  r.max_tokens = integer(body, "max_tokens", 1, INT64_MAX, "a positive integer");
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
    if (boolean(body, "echo").value_or(false)) {
      throw ApiError(400, "'echo' is not supported", "invalid_request_error", "echo");
    }
  }
  if (boolean(body, "ignore_eos").value_or(false)) sp.stop_at_eos = false;  // vLLM's extension
  r.stream = boolean(body, "stream").value_or(false);
  if (const json* so = get(body, "stream_options")) {
    if (!so->is_object()) bad_field("stream_options", "an object", *so);
    r.include_usage = boolean(*so, "include_usage").value_or(false);
  }
  return r;
}

ResponseBuilder::ResponseBuilder(const CompletionRequest& request, const std::string& model_name,
                                 const Tokenizer& tokenizer, int64_t n, int64_t prompt_tokens)
    : chat_(request.chat),
      want_logprobs_(request.params.logprobs >= 0),
      model_(model_name),
      tokenizer_(tokenizer),
      prompt_tokens_(prompt_tokens),
      choices_(static_cast<size_t>(n)) {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  id_ = fmt::format("{}-{:x}{:08x}", chat_ ? "chatcmpl" : "cmpl", rd(), counter++);
  created_ = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  for (auto& c : choices_) {
    if (!want_logprobs_) continue;
    c.logprobs = chat_ ? json{{"content", json::array()}}
                       : json{{"tokens", json::array()},
                              {"token_logprobs", json::array()},
                              {"top_logprobs", json::array()},
                              {"text_offset", json::array()}};
  }
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
  json top = json::object();
  for (const auto& [id, lp] : e.top_logprobs) {  // tokens that read alike keep the likeliest
    const std::string t = valid_utf8(tokenizer_.decode({id}, true));
    if (!top.contains(t)) top[t] = lp;
  }
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

std::vector<json> ResponseBuilder::add(const TokenEvent& e) {
  Choice& c = choices_.at(static_cast<size_t>(e.index));
  std::vector<json> out;
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
    out.push_back(chunk(e.index, delta, nullptr, e.finish_reason));
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
    if (chat_) {
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

json model_list(const std::string& model_name, int64_t created) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model_name},
                                 {"object", "model"},
                                 {"created", created},
                                 {"owned_by", "reef"}}})}};
}

}  // namespace reef
