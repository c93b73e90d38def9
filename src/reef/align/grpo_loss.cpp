// Implementation of align/grpo_loss.h.
#include "reef/align/grpo_loss.h"

#include <cmath>

#include "reef/base/error.h"

namespace reef {
namespace {

class GrpoLoss : public Loss {
 public:
  explicit GrpoLoss(const GrpoLossOptions& o) : o_(o) {
    eps_low_ = o.cfg.epsilon;
    eps_high_ = o.cfg.epsilon_high > 0 ? o.cfg.epsilon_high : o.cfg.epsilon;
  }

  std::vector<std::string> metric_names() const override {
    std::vector<std::string> names = {"loss"};
    if (o_.cfg.beta != 0) names.push_back("kl");
    names.insert(names.end(), {"entropy", "clip_ratio/low_mean", "clip_ratio/high_mean",
                               "clip_ratio/region_mean"});
    return names;
  }

  bool reads_logits_at_targets_only() const override { return true; }

  LossResult compute(const ModelOutputs& out, const TrainBatch& batch,
                     const StepTotals& step) const override {
    const GrpoConfig& g = o_.cfg;
    const int64_t T = batch.targets.size(1);  // after trimming: the first T positions of a row
    const int64_t K = 1 + (o_.old_logps ? o_.seq_len : 0) + (g.beta != 0 ? o_.seq_len : 0);
    if (!batch.values.defined() || batch.values.size(1) != K)
      fail("grpo: batch values are {}, expected [B, {}] (internal error)",
           batch.values.defined() ? c10::str(batch.values.sizes()) : "undefined", K);
    const auto values = batch.values.to(torch::kFloat);
    auto mask = (batch.targets != kIgnoreTarget).to(torch::kFloat);      // [B, T]
    auto logp = -out.token_cross_entropy(batch.targets, g.temperature);  // [B, T]
    auto adv = values.narrow(1, 0, 1);                                   // [B, 1]
    auto old = o_.old_logps ? values.narrow(1, 1, T) : logp.detach();
    auto log_ratio = logp - old;
    auto tokens = mask.sum(-1).clamp_min(1.0);  // [B]
    torch::Tensor log_w;                        // [B, T] or [B, 1]
    if (g.importance_sampling_level == "sequence")
      log_w = ((log_ratio * mask).sum(-1) / tokens).unsqueeze(-1);
    else
      log_w = log_ratio;
    auto coef1 = torch::exp(log_w);
    auto coef2 = torch::clamp(coef1, 1 - eps_low_, 1 + eps_high_);
    auto per_token = -torch::min(coef1 * adv, coef2 * adv);
    torch::Tensor kl;
    if (g.beta != 0) {
      auto ref = values.narrow(1, 1 + (o_.old_logps ? o_.seq_len : 0), T);
      auto d = ref - logp;
      kl = torch::exp(d) - d - 1;
      if (g.use_bias_correction_kl) kl = kl * coef1;
      per_token = per_token + g.beta * kl;
    }
    const double micro = 1.0 / static_cast<double>(step.micro_batches);
    torch::Tensor loss;   // this micro-batch's term of the step's objective
    torch::Tensor value;  // the loss as TRL logs it (before accumulation scaling)
    if (g.loss_type == "grpo") {
      value = ((per_token * mask).sum(-1) / tokens).mean();
      loss = value * micro;
    } else if (g.loss_type == "bnpo") {
      value = (per_token * mask).sum() / mask.sum().clamp_min(1.0);
      loss = value * micro;
    } else if (g.loss_type == "dr_grpo") {
      value = (per_token * mask).sum() /
              static_cast<double>(per_token.size(0) * g.max_completion_length);
      loss = value * micro;
    } else if (g.loss_type == "dapo") {
      // Over every counted token of the step (all micro-batches and ranks); the gradient
      // reduction averages over the ranks, hence gradient_average.
      loss = (per_token * mask).sum() * (static_cast<double>(step.gradient_average) /
                                         std::max<double>(1.0, static_cast<double>(step.targets)));
      value = loss.detach() / micro;
    } else {
      fail("grpo.loss_type={} (internal error: not validated)", g.loss_type);
    }
    LossResult r;
    r.objective = loss;
    if (out.aux_loss.defined() && o_.router_aux_coef > 0)
      r.objective = r.objective + micro * o_.router_aux_coef * out.aux_loss.to(torch::kFloat);
    // Metrics: each micro-batch's token mean, averaged over the micro-batches and ranks.
    const double share = micro / static_cast<double>(step.gradient_average);
    auto mean_over = [&](const torch::Tensor& x) {
      torch::NoGradGuard ng;
      if (x.size(1) == 1) return x.mean().item<double>();
      return ((x * mask).sum() / mask.sum().clamp_min(1.0)).item<double>();
    };
    r.metrics["loss"] = value.item<double>() * share;
    if (g.beta != 0) r.metrics["kl"] = mean_over(kl.detach()) * share;
    {
      torch::NoGradGuard ng;
      r.metrics["entropy"] = mean_over(out.token_entropy(g.temperature)) * share;
      auto c = coef1.detach();
      auto low = ((c < 1 - eps_low_) & (adv < 0)).to(torch::kFloat);
      auto high = ((c > 1 + eps_high_) & (adv > 0)).to(torch::kFloat);
      r.metrics["clip_ratio/low_mean"] = mean_over(low) * share;
      r.metrics["clip_ratio/high_mean"] = mean_over(high) * share;
      r.metrics["clip_ratio/region_mean"] = mean_over((low + high).clamp_max(1.0)) * share;
    }
    return r;
  }

 private:
  GrpoLossOptions o_;
  double eps_low_ = 0.2, eps_high_ = 0.2;
};

}  // namespace

double nan_std(const std::vector<double>& x, double mean) {
  double ss = 0;
  int64_t n = 0;
  for (double v : x)
    if (!std::isnan(v)) {
      ss += (v - mean) * (v - mean);
      ++n;
    }
  return n > 1 ? std::sqrt(ss / static_cast<double>(n - 1)) : NAN;
}

double nan_mean(const std::vector<double>& x) {
  double s = 0;
  int64_t n = 0;
  for (double v : x)
    if (!std::isnan(v)) {
      s += v;
      ++n;
    }
  return n > 0 ? s / static_cast<double>(n) : NAN;
}

std::unique_ptr<Loss> make_grpo_loss(const GrpoLossOptions& options) {
  return std::make_unique<GrpoLoss>(options);
}

std::vector<double> group_advantages(const std::vector<double>& rewards, int64_t group,
                                     const std::string& scale, std::vector<bool>* zero_std) {
  const auto n = static_cast<int64_t>(rewards.size());
  if (group < 1 || n % group != 0)
    fail("grpo: {} rewards do not make groups of {} (internal error)", n, group);
  std::vector<double> adv(static_cast<size_t>(n), 0.0);
  if (zero_std) zero_std->assign(static_cast<size_t>(n), false);
  const double batch_std = scale == "batch" ? nan_std(rewards, nan_mean(rewards)) : 0.0;
  for (int64_t g0 = 0; g0 < n; g0 += group) {
    std::vector<double> grp(rewards.begin() + g0, rewards.begin() + g0 + group);
    const double mean = nan_mean(grp);
    const double std = scale == "batch" ? batch_std : nan_std(grp, mean);
    for (int64_t i = 0; i < group; ++i) {
      const double r = grp[static_cast<size_t>(i)];
      double a = r - mean;
      if (scale != "none") a /= (std + 1e-4);
      adv[static_cast<size_t>(g0 + i)] = std::isnan(a) ? 0.0 : a;  // TRL's nan_to_num
      if (zero_std) (*zero_std)[static_cast<size_t>(g0 + i)] = std == 0.0;
    }
  }
  return adv;
}

}  // namespace reef
