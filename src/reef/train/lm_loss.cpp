// The language-model loss (train/loss.h's make_lm_loss): next-token cross-entropy over the
// counted targets, plus the MoE router's load-balancing term, plus the z-loss (PaLM, Chowdhery
// et al. 2022: train.z_loss * log(Z)^2 per counted target, Z the softmax normaliser), which keeps
// the logits from drifting and steadies bf16 training.
#include "reef/train/loss.h"

namespace reef {
namespace {

class LmLoss : public Loss {
 public:
  LmLoss(const Config& cfg, const ModelConfig& model)
      : aux_coef_(model.router_aux_loss_coef),
        z_coef_(cfg.train.z_loss),
        with_aux_(model.n_experts > 0 && model.output_router_logits) {}

  std::vector<std::string> metric_names() const override {
    std::vector<std::string> names = {"loss"};
    if (with_aux_) names.push_back("aux_loss");
    if (z_coef_ > 0) names.push_back("z_loss");
    return names;
  }

  bool reads_logits_at_targets_only() const override { return true; }

  LossResult compute(const ModelOutputs& out, const TrainBatch& batch,
                     const StepTotals& step) const override {
    LossResult r;
    const double targets = static_cast<double>(step.targets);
    // The gradient reduction averages over the dp ranks, hence the factor gradient_average.
    auto ce = out.cross_entropy_sum(batch.targets);
    r.objective = ce * (static_cast<double>(step.gradient_average) / targets);
    r.metrics["loss"] = ce.item<double>() / targets;
    if (out.aux_loss.defined()) {
      const double per_micro_batch = 1.0 / static_cast<double>(step.micro_batches);
      r.objective = r.objective + per_micro_batch * aux_coef_ * out.aux_loss.to(torch::kFloat);
      r.metrics["aux_loss"] = out.aux_loss.item<double>() * per_micro_batch /
                              static_cast<double>(step.gradient_average);
    }
    if (z_coef_ > 0) {  // normalised as the cross-entropy: over the step's counted targets
      auto counted = (batch.targets != kIgnoreTarget).to(torch::kFloat);
      auto z = (out.token_logsumexp().pow(2) * counted).sum();
      r.objective = r.objective + z * (z_coef_ * step.gradient_average / targets);
      r.metrics["z_loss"] = z.item<double>() / targets;
    }
    return r;
  }

 private:
  double aux_coef_, z_coef_;
  bool with_aux_;
};

}  // namespace

std::unique_ptr<Loss> make_lm_loss(const Config& cfg, const ModelConfig& model) {
  return std::make_unique<LmLoss>(cfg, model);
}

}  // namespace reef
