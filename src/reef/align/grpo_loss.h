// GRPO's objective on the shared train step, as TRL's GRPOTrainer defines it: per completion
// token, the clipped importance ratio of the policy to the log-probs at generation times the
// completion's group-relative advantage, plus beta times the k3 KL to a reference; normalised
// per loss type (grpo: mean per sequence, then over the micro-batch; bnpo: mean over the
// micro-batch's tokens; dr_grpo: sum over rows x max_completion_length; dapo: mean over the
// step's tokens). The policy's log-probs are taken at the sampling temperature (logits /
// temperature), as TRL does.
//
// A batch row is a prompt and one completion; its counted targets are the completion's tokens
// (none for a masked or dropped completion), and its values (GptSampleSource::values) are
// [advantage, old log-prob per position (when old_logps), reference log-prob per position
// (when beta > 0)], positions of the untrimmed row of seq_len tokens. Without old log-probs
// (one optimizer step per generation, one iteration) the ratio is to the policy itself,
// detached: exactly 1, as TRL uses then.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "reef/config/config.h"
#include "reef/train/loss.h"

namespace reef {

struct GrpoLossOptions {
  GrpoConfig cfg;
  int64_t seq_len = 0;     // positions per row before trimming
  bool old_logps = false;  // rows carry the log-probs at generation
  double router_aux_coef = 0;
};

std::unique_ptr<Loss> make_grpo_loss(const GrpoLossOptions& options);

// TRL's nanmean and nanstd: the mean and the Bessel-corrected std of the values that are not
// NaN (NaN when there are none, or for the std fewer than two).
double nan_mean(const std::vector<double>& x);
double nan_std(const std::vector<double>& x, double mean);

// Group-relative advantages of rewards [N] (N = groups x G, a group's completions consecutive),
// TRL's sum-then-normalise rule: reward - the group's mean, divided by (std + 1e-4) of the group
// (scale "group"), of the whole batch ("batch") or not at all ("none"); stds are Bessel-
// corrected; NaN rewards (unscorable) are left out of means and stds and get advantage 0.
// `zero_std` (optional) receives, per completion, whether its group's (or batch's) std is 0.
std::vector<double> group_advantages(const std::vector<double>& rewards, int64_t group,
                                     const std::string& scale,
                                     std::vector<bool>* zero_std = nullptr);

}  // namespace reef
