// Implementation of align/pair_loss.h.
#include "reef/align/pair_loss.h"

namespace reef {

LossResult pair_loss_result(const PairTerms& terms, const ModelOutputs& out, const StepTotals& step,
                            double aux_coef) {
  const double per_micro_batch = 1.0 / static_cast<double>(step.micro_batches);
  const double share = per_micro_batch / static_cast<double>(step.gradient_average);
  LossResult r;
  r.objective = terms.loss * per_micro_batch;
  if (out.aux_loss.defined() && aux_coef > 0)
    r.objective = r.objective + per_micro_batch * aux_coef * out.aux_loss.to(torch::kFloat);
  r.metrics["loss"] = terms.loss.item<double>() * share;
  for (const auto& [name, values] : terms.metrics)
    r.metrics[name] = values.detach().to(torch::kFloat).mean().item<double>() * share;
  return r;
}

double router_aux_coefficient(const ModelConfig& model) {
  return model.n_experts > 0 && model.output_router_logits ? model.router_aux_loss_coef : 0.0;
}

}  // namespace reef
