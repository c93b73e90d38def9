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

struct CompletionRequest {
  bool chat = false;
  std::string model;                               // as asked ("" = not given)
  std::string prompt;                              // completions' prompt, or the rendered chat
  std::optional<std::vector<int32_t>> prompt_ids;  // a prompt given as token ids
  std::optional<int64_t> max_tokens;  // absent: 16 (completions) or the rest of the context
  std::optional<uint64_t> seed;       // absent: a random seed
  RequestParams params;               // everything else (sampling.max_new_tokens/seed unset)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
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

// Builds the JSON of one request's response from its engine events.
class ResponseBuilder {
 public:
  ResponseBuilder(const CompletionRequest& request, const std::string& model_name,
                  const Tokenizer& tokenizer, int64_t n, int64_t prompt_tokens);
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
    std::string text;
    std::string finish_reason;
    nlohmann::json logprobs;  // chat: {"content": [...]}; completions: the four lists
    bool role_sent = false;
    int64_t completion_tokens = 0;
  };
  nlohmann::json chunk(int64_t index, nlohmann::json delta_or_text, const nlohmann::json& logprobs,
                       const nlohmann::json& finish_reason) const;
  nlohmann::json logprob_entry(const TokenEvent& event, Choice& choice) const;

  bool chat_;
  bool want_logprobs_;
  std::string id_, model_;
  int64_t created_;
  const Tokenizer& tokenizer_;
  int64_t prompt_tokens_;
  std::vector<Choice> choices_;
};

// The object /v1/models lists for the served model.
nlohmann::json model_list(const std::string& model_name, int64_t created);

// JSON text that never throws on invalid UTF-8 (it is replaced by U+FFFD).
std::string dump_json(const nlohmann::json& j);

}  // namespace reef
