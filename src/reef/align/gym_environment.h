// The `gym` reward of `reef align grpo`: a client of a NeMo Gym resources server
// (https://docs.nvidia.com/nemo/gym), the HTTP protocol its environments verify rollouts with.
// Per rollout, on one session (Gym keeps it in a cookie, which is sent back):
//
//   POST /seed_session  the row's metadata fields plus responses_create_params
//   POST /verify        BaseVerifyRequest: responses_create_params ({"input": the prompt
//                       messages}), response (an OpenAI Responses-API response whose output is one
//                       assistant message with the completion as output_text), and the row's
//                       metadata fields at the top level (how Gym task data such as
//                       expected_answer reach the verifier); the reply's "reward" is the reward
//
// A metadata "responses_create_params" object (a Gym dataset row's own, with its tools) is sent
// with its "input" replaced by the prompt the model saw. Each call has grpo.env_timeout_s and is
// retried grpo.env_retries times; a rollout whose calls all fail gets NaN, and the batch logs one
// warning with the count. A few rollouts are scored at once.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reef/align/environment.h"

namespace reef {

class GymEnvironment : public Environment {
 public:
  // Throws a usage error naming grpo.gym_url when it is empty or no http(s) URL.
  explicit GymEnvironment(const GrpoConfig& cfg);
  std::string name() const override { return "gym"; }
  std::vector<double> score(const std::vector<Rollout>& rollouts) override;

  // The request bodies, as sent.
  static nlohmann::ordered_json seed_session_body(const Rollout& r);
  static nlohmann::ordered_json verify_body(const Rollout& r);

 private:
  double score_one(const Rollout& r, std::string* error) const;

  std::string url_;   // as configured, for messages
  std::string base_;  // scheme://host:port
  std::string prefix_;
  double timeout_s_;
  int64_t retries_;
};

}  // namespace reef
