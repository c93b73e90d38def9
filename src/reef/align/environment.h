// Reward environments of `reef align grpo`: what scores a completion. Each environment gives one
// reward per rollout, and grpo.rewards lists those whose weighted sum is the reward, each
// "name" or "name:weight":
//
//   exact_match  1 when the completion (trimmed) equals metadata[grpo.answer_field] (trimmed); with
//                grpo.answer_regex, the regex's last match in the completion is compared instead
//                (its first group, or the whole match without one; no match: 0)
//   math         1 when the completion's final answer (the last \boxed{...}, else what follows
//                the last "####", else the last number) equals the expected answer as a number
//                (fractions, \frac, 1,234, 50%, $5 ...) or, when either is no number, as text
//                (align/math_answer.h)
//   format       1 when grpo.format_regex matches the WHOLE completion. The regex is ECMAScript
//                (std::regex), where "." does not match a newline: write [\s\S] for "anything"
//                (e.g. "<think>[\s\S]*</think>[\s\S]*")
//   json         1 when the completion (trimmed, a ```json fence around it removed) is JSON that
//                validates against metadata["schema"], else the file grpo.json_schema, else
//                anything (align/json_schema.h lists the keywords)
//   gym          the reward of a NeMo Gym resources server at grpo.gym_url
//                (align/gym_environment.h)
//
// A reward is NaN where a rollout cannot be scored (no expected answer in its metadata, a Gym
// server that does not answer); the total ignores NaN rewards (TRL GRPOTrainer's nansum) and is
// NaN, and the rollout dropped, only when every environment gave NaN.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "reef/config/config.h"

namespace reef {

struct Rollout {
  std::string prompt;               // the prompt text as the model saw it (chat template applied)
  nlohmann::ordered_json messages;  // the prompt as messages when given so (else null)
  std::string completion;           // the generated text (stop strings removed)
  nlohmann::ordered_json metadata;  // the prompt row's free "metadata" object; may be null
  bool truncated = false;           // cut at max_completion_length
};

class Environment {
 public:
  virtual ~Environment() = default;
  virtual std::string name() const = 0;
  // One reward per rollout; NaN where it cannot be scored (after the retries an HTTP
  // environment makes).
  virtual std::vector<double> score(const std::vector<Rollout>& rollouts) = 0;
};

// One environment by name, configured from cfg (the grpo.* keys): throws a usage error naming
// the key for an unknown name or a bad setting (a regex that does not compile, an unreadable
// schema file, a missing gym_url).
std::unique_ptr<Environment> make_environment(const std::string& name, const GrpoConfig& cfg);

struct Rewards {
  std::vector<double> total;  // weighted sum per rollout (NaN when every environment gave NaN)
  std::vector<std::pair<std::string, std::vector<double>>> per_environment;  // unweighted
  int64_t dropped = 0;  // rollouts with a NaN total
};

// The environments of cfg.rewards (grpo.rewards), each "name" or "name:weight" (default 1).
class RewardSet {
 public:
  explicit RewardSet(const GrpoConfig& cfg);
  Rewards score(const std::vector<Rollout>& rollouts);
  std::vector<std::string> names() const;
  const std::vector<double>& weights() const { return weights_; }

 private:
  std::vector<std::unique_ptr<Environment>> envs_;
  std::vector<double> weights_;
};

}  // namespace reef
