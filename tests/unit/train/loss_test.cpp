// Tests for train/loss.h's language-model loss: its objective and metrics equal a hand
// computation from the logits (cross-entropy over the step's counted targets, the z-loss
// log(Z)^2 per counted target), and under tensor parallelism (tp ranks as threads) the same
// objective and the full model's gradients come from the vocab slices.
#include "reef/train/loss.h"

#include <gtest/gtest.h>

#include "../parallel/model_copies.h"
#include "../parallel/run_ranks.h"
#include "reef/parallel/tensor_parallel.h"

namespace reef {
namespace {

Config z_config(double z) {
  Config c;
  c.model = testing::tiny_llama_config();
  c.train.z_loss = z;
  return c;
}

struct Sample {
  torch::Tensor ids, targets;
  TrainBatch batch;
  StepTotals totals;
};

Sample sample(const ModelConfig& m) {
  torch::manual_seed(4);
  Sample s;
  s.ids = torch::randint(0, m.vocab_size, {2, 6}, torch::kLong);
  s.targets = torch::randint(0, m.vocab_size, {2, 6}, torch::kLong);
  s.targets[0][1] = kIgnoreTarget;
  s.batch.targets = s.targets;
  s.batch.n_targets = 11;
  s.totals = {/*targets=*/20, /*micro_batches=*/2, /*gradient_average=*/2};  // a step's share
  return s;
}

TEST(LmLoss, ObjectiveAndMetricsEqualTheHandComputationWithZLoss) {
  const Config cfg = z_config(0.01);
  CausalLM model = testing::random_model(cfg.model);
  const Sample s = sample(cfg.model);
  auto loss = make_lm_loss(cfg, model->config());
  EXPECT_EQ(loss->metric_names(), (std::vector<std::string>{"loss", "z_loss"}));
  EXPECT_EQ(make_lm_loss(z_config(0), model->config())->metric_names(),
            std::vector<std::string>{"loss"});
  ModelOutputs out;
  out.logits = model->forward(s.ids);
  LossResult r = loss->compute(out, s.batch, s.totals);

  auto logits = out.logits.detach().to(torch::kDouble);
  auto lse = torch::logsumexp(logits, -1);  // [B, T]
  double ce = 0, z = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 6; ++t) {
      const int64_t y = s.targets[b][t].item<int64_t>();
      if (y == kIgnoreTarget) continue;
      ce += lse[b][t].item<double>() - logits[b][t][y].item<double>();
      z += std::pow(lse[b][t].item<double>(), 2);
    }
  EXPECT_NEAR(r.metrics["loss"], ce / 20, 1e-6);
  EXPECT_NEAR(r.metrics["z_loss"], z / 20, 1e-5);
  EXPECT_NEAR(r.objective.item<double>(), 2 * (ce + 0.01 * z) / 20, 1e-5);
}

TEST(LmLoss, ZLossUnderTensorParallelismGivesTheFullModelsGradients) {
  const Config cfg = z_config(0.05);
  CausalLM full = testing::random_model(cfg.model);
  const Sample s = sample(cfg.model);
  auto loss = make_lm_loss(cfg, full->config());
  ModelOutputs whole;
  whole.logits = full->forward(s.ids);
  LossResult want = loss->compute(whole, s.batch, s.totals);
  want.objective.backward();
  std::vector<CausalLM> ranks = {testing::copy_model(cfg.model, full),
                                 testing::copy_model(cfg.model, full)};
  testing::run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
    CausalLM m = ranks[pg->rank()];
    TensorParallel tp(m, pg);
    ModelOutputs out;
    out.logits = m->forward(s.ids);
    out.tp = &tp;
    LossResult r = loss->compute(out, s.batch, s.totals);
    EXPECT_NEAR(r.objective.item<double>(), want.objective.item<double>(), 1e-5);
    EXPECT_NEAR(r.metrics["z_loss"], want.metrics["z_loss"], 1e-5);
    r.objective.backward();
    tp.reduce_partial_gradients();
    auto grads = full->named_parameters();
    for (const auto& item : m->named_parameters())
      testing::expect_close(tp.gather(item.key(), item.value().grad()), grads[item.key()].grad(),
                            "gradient of " + item.key(), 1e-5);
  });
}

}  // namespace
}  // namespace reef
