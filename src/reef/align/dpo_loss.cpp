// Implementation of align/dpo_loss.h.
#include "reef/align/dpo_loss.h"

#include "reef/align/pair_loss.h"
#include "reef/base/error.h"

namespace reef {
namespace {

namespace F = torch::nn::functional;

class DpoLoss : public Loss {
 public:
  DpoLoss(const DpoConfig& cfg, const ModelConfig& model)
      : cfg_(cfg), aux_coef_(router_aux_coefficient(model)) {}

  std::vector<std::string> metric_names() const override {
    std::vector<std::string> names = {"loss",
                                      "rewards/chosen",
                                      "rewards/rejected",
                                      "rewards/accuracies",
                                      "rewards/margins",
                                      "logps/chosen",
                                      "logps/rejected"};
    if (cfg_.rpo_alpha > 0) names.push_back("nll_loss");
    return names;
  }

  bool scores_validation() const override { return true; }
  bool reads_logits_at_targets_only() const override { return true; }

  LossResult compute(const ModelOutputs& out, const TrainBatch& batch,
                     const StepTotals& step) const override {
    const PairLogps lp = pair_logps(out, batch);
    const double beta = cfg_.beta, e = cfg_.label_smoothing;
    torch::Tensor per_pair, chosen_reward, rejected_reward, chosen_logps, rejected_logps;
    if (cfg_.loss_type == "simpo") {
      chosen_logps = lp.chosen / lp.chosen_tokens.clamp_min(1.0);
      rejected_logps = lp.rejected / lp.rejected_tokens.clamp_min(1.0);
      auto z = beta * (chosen_logps - rejected_logps - cfg_.simpo_gamma / beta);
      per_pair = -F::logsigmoid(z) * (1 - e) - F::logsigmoid(-z) * e;
      chosen_reward = beta * chosen_logps.detach();
      rejected_reward = beta * rejected_logps.detach();
    } else {
      if (!batch.values.defined() || batch.values.size(1) != 2)
        fail("dpo: the batch carries no reference log-probs (internal error)");
      chosen_logps = lp.chosen;
      rejected_logps = lp.rejected;
      auto ref = batch.values.to(torch::kFloat);
      auto chosen_ratio = lp.chosen - ref.select(1, 0);
      auto rejected_ratio = lp.rejected - ref.select(1, 1);
      auto z = beta * (chosen_ratio - rejected_ratio);
      if (cfg_.loss_type == "sigmoid") {
        per_pair = -F::logsigmoid(z);
      } else if (cfg_.loss_type == "hinge") {
        per_pair = torch::relu(1 - z);
      } else if (cfg_.loss_type == "ipo") {
        auto d = chosen_ratio / lp.chosen_tokens.clamp_min(1.0) -
                 rejected_ratio / lp.rejected_tokens.clamp_min(1.0);
        per_pair = (d - 1 / (2 * beta)).pow(2);
      } else if (cfg_.loss_type == "robust") {
        per_pair = (-(1 - e) * F::logsigmoid(z) + e * F::logsigmoid(-z)) / (1 - 2 * e);
      } else {
        fail("dpo.loss_type={} (internal error: not validated)", cfg_.loss_type);
      }
      chosen_reward = beta * chosen_ratio.detach();
      rejected_reward = beta * rejected_ratio.detach();
    }
    PairTerms t;
    t.loss = per_pair.mean();
    if (cfg_.rpo_alpha > 0) {
      auto nll = lp.chosen_nll_sum / lp.chosen_tokens.sum().clamp_min(1.0);
      t.metrics.emplace_back("nll_loss", nll);
      t.loss = t.loss + cfg_.rpo_alpha * nll;
    }
    t.metrics.insert(t.metrics.end(), {{"rewards/chosen", chosen_reward},
                                       {"rewards/rejected", rejected_reward},
                                       {"rewards/accuracies", chosen_reward > rejected_reward},
                                       {"rewards/margins", chosen_reward - rejected_reward},
                                       {"logps/chosen", chosen_logps},
                                       {"logps/rejected", rejected_logps}});
    return pair_loss_result(t, out, step, aux_coef_);
  }

 private:
  DpoConfig cfg_;
  double aux_coef_;
};

}  // namespace

PairLogps pair_logps(const ModelOutputs& out, const TrainBatch& batch) {
  if (!batch.inputs.segment_ids.defined())
    fail("dpo: the batch has no chosen/rejected segments (internal error)");
  const auto& seg = batch.inputs.segment_ids;        // [B, T]: 1 chosen, 2 rejected, 0 padding
  auto ce = out.token_cross_entropy(batch.targets);  // [B, T], 0 where not counted
  auto counted = batch.targets != kIgnoreTarget;
  auto chosen = (seg == 1).logical_and(counted).to(torch::kFloat);
  auto rejected = (seg == 2).logical_and(counted).to(torch::kFloat);
  PairLogps lp;
  lp.chosen = -(ce * chosen).sum(1);
  lp.rejected = -(ce * rejected).sum(1);
  lp.chosen_tokens = chosen.sum(1);
  lp.rejected_tokens = rejected.sum(1);
  lp.chosen_nll_sum = (ce * chosen).sum();
  return lp;
}

bool dpo_uses_reference(const DpoConfig& cfg) { return cfg.loss_type != "simpo"; }

std::unique_ptr<Loss> make_dpo_loss(const DpoConfig& cfg, const ModelConfig& model) {
  return std::make_unique<DpoLoss>(cfg, model);
}

}  // namespace reef
