// Tests for train/optim.h: the LR schedule, weight-decay groups, clipping and optimizer state.
#include <gtest/gtest.h>

#include <cmath>

#include "reef/parallel/optimizer.h"
#include "reef/train/schedule.h"

namespace reef {
namespace {

TEST(Schedule, WarmupThenCosineToMinLr) {
  OptimConfig o;
  o.lr = 1e-3;
  o.min_lr = 1e-4;
  o.warmup_steps = 10;
  o.schedule = "cosine";
  EXPECT_DOUBLE_EQ(lr_at_step(o, 0, 110), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at_step(o, 9, 110), 1e-3);
  EXPECT_DOUBLE_EQ(lr_at_step(o, 10, 110), 1e-3);
  EXPECT_NEAR(lr_at_step(o, 10 + 99 / 2.0, 110), 5.5e-4, 1e-5);
  EXPECT_DOUBLE_EQ(lr_at_step(o, 109, 110), 1e-4);
  for (int s = 11; s < 110; ++s) EXPECT_LE(lr_at_step(o, s, 110), lr_at_step(o, s - 1, 110));
}

TEST(Schedule, LinearAndConstant) {
  OptimConfig o;
  o.lr = 1.0;
  o.min_lr = 0.0;
  o.warmup_steps = 0;
  o.schedule = "linear";
  EXPECT_DOUBLE_EQ(lr_at_step(o, 0, 11), 1.0);
  EXPECT_DOUBLE_EQ(lr_at_step(o, 5, 11), 0.5);
  EXPECT_DOUBLE_EQ(lr_at_step(o, 10, 11), 0.0);
  o.schedule = "constant";
  EXPECT_DOUBLE_EQ(lr_at_step(o, 7, 11), 1.0);
}

TEST(Optimizer, DecayGroupsExcludeNormsBiasesEmbeddings) {
  auto w = torch::randn({4, 4}), b = torch::randn({4}), e = torch::randn({10, 4});
  EXPECT_TRUE(param_gets_weight_decay("model.layers.0.mlp.up_proj.weight", w, false));
  EXPECT_FALSE(param_gets_weight_decay("model.layers.0.mlp.up_proj.bias", b, false));
  EXPECT_FALSE(param_gets_weight_decay("model.norm.weight", b, false));
  EXPECT_FALSE(param_gets_weight_decay("model.embed_tokens.weight", e, false));
  EXPECT_FALSE(param_gets_weight_decay("transformer.wpe.weight", e, false));
  EXPECT_TRUE(param_gets_weight_decay("model.embed_tokens.weight", e, true));
}

TEST(Optimizer, DecoupledDecayOnlyOnDecayGroup) {
  // With zero gradients Adam's update is 0, so only decoupled decay moves parameters.
  auto w = torch::ones({2, 2}).requires_grad_(true), b = torch::ones({2}).requires_grad_(true);
  OptimConfig o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  Optimizer opt({{"l.weight", w}, {"l.bias", b}}, o);
  w.mutable_grad() = torch::zeros_like(w);
  b.mutable_grad() = torch::zeros_like(b);
  opt.step();
  EXPECT_NEAR(w[0][0].item<double>(), 1.0 - 0.1 * 0.5, 1e-7);
  EXPECT_DOUBLE_EQ(b[0].item<double>(), 1.0);
}

TEST(Optimizer, ClipScalesToMaxNorm) {
  auto w = torch::zeros({2}).requires_grad_(true);
  Optimizer opt({{"w", w}}, OptimConfig{});
  w.mutable_grad() = torch::tensor({3.0f, 4.0f});
  EXPECT_NEAR(opt.clip_grad_norm(1.0), 5.0, 1e-6);
  EXPECT_NEAR(w.grad().norm().item<double>(), 1.0, 1e-5);
}

TEST(Optimizer, StateRoundTripGivesIdenticalSteps) {
  auto make = [] { return torch::arange(6, torch::kFloat).reshape({2, 3}).requires_grad_(true); };
  auto w1 = make(), w2 = make();
  OptimConfig o;
  Optimizer a({{"w", w1}}, o);
  for (int i = 0; i < 3; ++i) {
    w1.mutable_grad() = torch::sin(w1.detach() + i);
    a.step();
  }
  int64_t step = 0;
  auto st = a.state_tensors(&step);
  EXPECT_EQ(step, 3);
  std::map<std::string, torch::Tensor> m(st.begin(), st.end());
  {
    torch::NoGradGuard ng;
    w2.copy_(w1);
  }
  Optimizer b({{"w", w2}}, o);
  b.load_state_tensors(m, step);
  for (int i = 0; i < 3; ++i) {
    w1.mutable_grad() = torch::cos(w1.detach() * i);
    w2.mutable_grad() = torch::cos(w2.detach() * i);
    a.step();
    b.step();
  }
  EXPECT_TRUE(torch::equal(w1, w2));
}

}  // namespace
}  // namespace reef
