// The OpenAI HTTP API's JSON, apart from any HTTP library: request bodies of /v1/completions
// and /v1/chat/completions parsed and checked into engine parameters (a wrong field is an
// ApiError naming it, which the server answers with OpenAI's error object), and the responses
// built from engine events, whole or as server-sent-event chunks.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "reef/infer/engine.h"
#include "reef/tokenizer/chat_template.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

// An error answered as {"error": {"message", "type", "param", "code"}} with an HTTP status.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string type = "invalid_request_error",
           std::string param = "", std::string code = "")
      : std::runtime_error(message),
        status_(status),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}
  int status() const { return status_; }
  nlohmann::json body() const;

 private:
  int status_;
  std::string type_, param_, code_;
};

// OpenAI's error object for a status and message (param/code null when empty).
nlohmann::json error_body(const std::string& message, const std::string& type,
                          const std::string& param = "", const std::string& code = "");

// One prompt: text, or token ids as given.
struct PromptInput {
  std::string text;
  std::optional<std::vector<int32_t>> ids;
};

struct CompletionRequest {
  bool chat = false;
  std::string model;  // as asked ("" = not given)
  // Completions' prompts (a string, a list of strings, a token list or a list of token lists:
  // each gets its own n choices), or the one rendered chat.
  std::vector<PromptInput> prompts;
  bool echo = false;                  // completions: the prompt (and its logprobs) leads the text
  std::optional<int64_t> max_tokens;  // absent: 16 (completions) or the rest of the context;
                                      // 0 (completions with echo): scoring only
  std::optional<uint64_t> seed;       // absent: a random seed
  RequestParams params;               // everything else (sampling.max_new_tokens/seed unset)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // Chat tools: the request's `tools` (null: none), tool_choice ("auto", "none", "required" or
  // a function name), parallel_tool_calls, and how the model writes a call (its template's
  // format): "hermes" (<tool_call>{"name", "arguments"}</tool_call>, Qwen2.5 and Hermes) or
  // "json" ({"name", "parameters"}, Llama 3.1). With tools and a choice other than "none", the
  // answer's calls become tool_calls.
  nlohmann::ordered_json tools;
  std::string tool_choice = "auto";
  bool parallel_tool_calls = true;
  std::string tool_format = "hermes";
};

// How chat requests become prompts: the model's chat template (tokenizer/chat_template.h),
// rendered with the generation prompt, and the stop string every chat request gets (the
// template's end_of_turn(), "" for none).
struct ChatPrompting {
  std::shared_ptr<const ChatTemplate> chat_template;
  std::string end_of_turn;
};

// Parses and checks a request body. Throws ApiError(400) naming the bad field, or what the chat
// template refused (raise_exception).
CompletionRequest parse_completion_request(const std::string& body, bool chat,
                                           const ChatPrompting& chat_prompting);

// Builds the JSON of one request's response from its engine events: choice i answers prompt
// i / n (the engine's submit_group indexing).
class ResponseBuilder {
 public:
  ResponseBuilder(const CompletionRequest& request, const std::string& model_name,
                  const Tokenizer& tokenizer, const std::vector<std::vector<int32_t>>& prompt_ids);
  // Records an event; returns the stream chunks (JSON objects) it produces, in order.
  std::vector<nlohmann::json> add(const TokenEvent& event);
  // The whole (non-streaming) response once every choice finished.
  nlohmann::json response() const;
  // The closing usage chunk of a stream (stream_options.include_usage).
  nlohmann::json usage_chunk() const;
  nlohmann::json usage() const;
  const std::string& id() const { return id_; }

 private:
  struct Choice {
    nlohmann::json tool_calls;  // with tools: the calls read from the finished text (or null)
    size_t streamed = 0;        // with tools: bytes of text already sent as content
    bool holding = false;       // with tools: the text may be a call; held back to the end
    std::string echo;           // the prompt's text when echoed, sent with the choice's first event
    bool echoed = false;
    std::string text;
    std::string finish_reason;
    nlohmann::json logprobs;  // chat: {"content": [...]}; completions: the four lists
    bool role_sent = false;
    int64_t completion_tokens = 0;
  };
  nlohmann::json chunk(int64_t index, nlohmann::json delta_or_text, const nlohmann::json& logprobs,
                       const nlohmann::json& finish_reason) const;
  nlohmann::json logprob_entry(const TokenEvent& event, Choice& choice) const;
  // The echoed prompt's logprobs (completions' four lists; first token null) from its tokens.
  nlohmann::json prompt_logprob_lists(const std::vector<int32_t>& ids,
                                      const std::vector<TokenLogprob>& lps) const;
  // Completions' top_logprobs object: the top k and the token itself, likeliest kept per text.
  nlohmann::json top_object(const std::vector<std::pair<int32_t, double>>& top, int32_t token,
                            double logprob) const;

  // With tools: the text is held back and read for calls once the choice finishes.
  void finish_tool_calls(Choice& c) const;
  bool chat_;
  bool want_logprobs_;
  bool tools_ = false;
  std::string tool_format_;
  std::string id_, model_;
  int64_t created_;
  const Tokenizer& tokenizer_;
  std::vector<std::vector<int32_t>> prompt_ids_;
  int64_t n_ = 1;
  int64_t prompt_tokens_ = 0;
  std::vector<Choice> choices_;
};

// vLLM's tokenizer endpoints (what lm-evaluation-harness's remote tokenizer uses):
// POST /tokenize {"prompt", "add_special_tokens" (true)} or {"messages", "tools",
// "add_generation_prompt" (true), "add_special_tokens" (false)} -> {"count", "max_model_len",
// "tokens", "token_strs"}, tokenized as the model's transformers tokenizer does (special-token text
// parsed); POST /detokenize {"tokens"} -> {"prompt"}; GET /tokenizer_info -> the special tokens'
// text, the chat template and the context length. Bad fields throw ApiError(400).
nlohmann::json tokenize_response(const std::string& body, const Tokenizer& tokenizer,
                                 const ChatPrompting& chat_prompting, int64_t max_model_len);
nlohmann::json detokenize_response(const std::string& body, const Tokenizer& tokenizer);
nlohmann::json tokenizer_info(const Tokenizer& tokenizer, const ChatPrompting& chat_prompting,
                              int64_t max_model_len);

// The tool calls in a model's answer: "hermes" blocks <tool_call>{"name", "arguments"}</tool_call>
// (the text outside them goes to *rest), or for "json" the whole answer as one {"name",
// "parameters" or "arguments"} object. Each call: {"id", "type": "function", "function": {"name",
// "arguments" (JSON text)}}. An empty array when the answer holds none.
nlohmann::json parse_tool_calls(const std::string& text, const std::string& format,
                                std::string* rest);

// The object /v1/models lists for the served model.
nlohmann::json model_list(const std::string& model_name, int64_t created);

// JSON text that never throws on invalid UTF-8 (it is replaced by U+FFFD).
std::string dump_json(const nlohmann::json& j);

}  // namespace reef
