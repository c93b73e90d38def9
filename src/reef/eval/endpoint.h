// An OpenAI-compatible HTTP server as an evaluation model: /v1/completions for generate_until
// (prompt, max_tokens, stop, temperature 0) and, where the server returns prompt logprobs
// (echo + logprobs + max_tokens 0), for loglikelihood and loglikelihood_rolling; and
// /v1/chat/completions for LLM-as-judge scoring. With a local tokenizer the prompts of
// log-likelihood requests are sent as token ids split exactly as the local model splits them
// (so results equal local ones); without one, text is sent and the continuation's tokens are
// found by the reply's text_offset.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "reef/eval/language_model.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef::eval {

struct EndpointOptions {
  std::string url;            // base URL: http://host:port or http://host:port/v1
  std::string model = "";     // "model" field of each request
  std::string api_key;        // sent as a Bearer token when set
  int64_t max_length = 2048;  // context for rolling windows and generation truncation
  double timeout_s = 600;
};

class EndpointModel : public LanguageModel {
 public:
  // `tokenizer` may be null (text prompts; no loglikelihood_rolling).
  EndpointModel(EndpointOptions opts, std::unique_ptr<Tokenizer> tokenizer);
  ~EndpointModel() override;

  std::vector<LoglikelihoodResult> loglikelihood(
      const std::vector<std::pair<std::string, std::string>>& requests,
      const ProgressFn& progress) override;
  std::vector<double> loglikelihood_rolling(const std::vector<std::string>& texts,
                                            const ProgressFn& progress) override;
  std::vector<std::string> generate_until(const std::vector<GenerateRequest>& requests,
                                          const ProgressFn& progress) override;
  std::string describe() const override;

  // One chat completion (temperature 0): the assistant message's content.
  std::string chat(const std::string& system, const std::string& user, int64_t max_tokens = 256);

 private:
  nlohmann::json post(const std::string& path, const nlohmann::json& body);
  // Scores token ids: the last n_cont prompt tokens' logprobs from an echo request.
  LoglikelihoodResult score_ids(const std::vector<int32_t>& ids, size_t n_cont);

  EndpointOptions opts_;
  std::unique_ptr<Tokenizer> tokenizer_;
  struct Http;
  std::unique_ptr<Http> http_;
  std::string prefix_;  // "/v1" or the URL's own path
};

}  // namespace reef::eval
