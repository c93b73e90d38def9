// Implementation of align/reward_loss.h.
#include "reef/align/reward_loss.h"

#include "reef/align/pair_loss.h"
#include "reef/base/error.h"

namespace reef {
namespace {

namespace F = torch::nn::functional;

class RewardLoss : public Loss {
 public:
  RewardLoss(const RmConfig& cfg, const ModelConfig& model)
      : cfg_(cfg), pad_id_(model.pad_token_id), aux_coef_(router_aux_coefficient(model)) {}

  std::vector<std::string> metric_names() const override {
    return {"loss", "accuracy", "margin", "mean_reward", "rewards/chosen", "rewards/rejected"};
  }

  bool scores_validation() const override { return true; }

  LossResult compute(const ModelOutputs& out, const TrainBatch& batch,
                     const StepTotals& step) const override {
    const PairRewards r = pair_rewards(out.logits, batch, pad_id_);
    auto diff = r.chosen - r.rejected;
    if (batch.values.defined() && batch.values.size(1) >= 1)
      diff = diff - batch.values.select(1, 0).to(torch::kFloat);
    PairTerms t;
    t.loss = -F::logsigmoid(diff).mean();
    if (cfg_.center_rewards_coefficient > 0)
      t.loss = t.loss + cfg_.center_rewards_coefficient * (r.chosen + r.rejected).pow(2).mean();
    auto c = r.chosen.detach(), j = r.rejected.detach();
    t.metrics = {{"accuracy", c > j},
                 {"margin", c - j},
                 {"mean_reward", torch::cat({c, j})},
                 {"rewards/chosen", c},
                 {"rewards/rejected", j}};
    return pair_loss_result(t, out, step, aux_coef_);
  }

 private:
  RmConfig cfg_;
  int64_t pad_id_;
  double aux_coef_;
};

}  // namespace

torch::Tensor last_scored_position(const torch::Tensor& input_ids, const torch::Tensor& segment_ids,
                                   int64_t segment, int64_t pad_id) {
  const int64_t T = input_ids.size(1);
  auto t = torch::arange(T, input_ids.options().dtype(torch::kLong)).unsqueeze(0);
  auto in_segment = segment_ids == segment;
  auto scored = pad_id >= 0 ? in_segment.logical_and(input_ids != pad_id) : in_segment;
  auto best = torch::where(scored, t, -1).amax(1);
  auto fallback = torch::where(in_segment, t, 0).amax(1);
  return torch::where(best >= 0, best, fallback);
}

PairRewards pair_rewards(const torch::Tensor& logits, const TrainBatch& batch, int64_t pad_id) {
  if (!batch.inputs.segment_ids.defined())
    fail("rm: the batch has no chosen/rejected segments (internal error)");
  if (logits.dim() != 3 || logits.size(2) != 1)
    fail("rm: the model's outputs are {}, not one reward per position (internal error)",
         c10::str(logits.sizes()));
  auto scores = logits.select(2, 0).to(torch::kFloat);  // [B, T]
  const auto& ids = batch.inputs.input_ids;
  const auto& seg = batch.inputs.segment_ids;
  PairRewards r;
  r.chosen = scores.gather(1, last_scored_position(ids, seg, 1, pad_id).unsqueeze(1)).squeeze(1);
  r.rejected = scores.gather(1, last_scored_position(ids, seg, 2, pad_id).unsqueeze(1)).squeeze(1);
  return r;
}

std::unique_ptr<Loss> make_reward_loss(const RmConfig& cfg, const ModelConfig& model) {
  return std::make_unique<RewardLoss>(cfg, model);
}

}  // namespace reef
