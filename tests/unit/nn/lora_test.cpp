// LoRA on Linear (nn/linear.h) against the plain formula y = x W^T + b + (x A^T B^T) * scaling:
// forward with and without rsLoRA, PEFT's default init (B zero: a no-op branch), gradients that
// reach only A and B when the base is frozen, merge equivalence, and dropout only in training.
#include <gtest/gtest.h>

#include <cmath>

#include "reef/nn/linear.h"

namespace reef {
namespace {

Linear make_lora(bool rslora, double dropout = 0) {
  torch::manual_seed(11);
  Linear l(12, 7, true);
  LoraOptions o;
  o.r = 4;
  o.alpha = 6;
  o.dropout = dropout;
  o.use_rslora = rslora;
  o.init_weights = false;  // non-zero B, so the branch shows
  l->enable_lora(o);
  return l;
}

TEST(Lora, NamesAndShapesArePeftsKeys) {
  auto l = make_lora(false);
  const std::vector<std::string> want = {"weight", "bias", "lora_A.weight", "lora_B.weight"};
  EXPECT_EQ(l->named_parameters().keys(), want);
  EXPECT_EQ(l->lora_A->weight.sizes(), (std::vector<int64_t>{4, 12}));
  EXPECT_EQ(l->lora_B->weight.sizes(), (std::vector<int64_t>{7, 4}));
  EXPECT_FALSE(l->lora_A->bias.defined());
  EXPECT_FALSE(l->lora_B->bias.defined());
  EXPECT_GT(l->lora_B->weight.abs().sum().item<double>(), 0);
}

TEST(Lora, ForwardIsThePlainFormula) {
  for (bool rslora : {false, true}) {
    auto l = make_lora(rslora);
    const double scaling = rslora ? 6.0 / 2.0 : 6.0 / 4.0;
    EXPECT_DOUBLE_EQ(l->lora_scaling(), scaling);
    auto x = torch::randn({2, 5, 12}, torch::kDouble).to(torch::kFloat);  // [B, T, C]
    torch::NoGradGuard ng;
    auto xd = x.to(torch::kDouble);
    auto w = l->weight.to(torch::kDouble), b = l->bias.to(torch::kDouble);
    auto a = l->lora_A->weight.to(torch::kDouble), bb = l->lora_B->weight.to(torch::kDouble);
    auto want = xd.matmul(w.t()) + b + xd.matmul(a.t()).matmul(bb.t()) * scaling;
    EXPECT_LE((l(x).to(torch::kDouble) - want).abs().max().item<double>(), 1e-5) << rslora;
  }
}

TEST(Lora, DefaultInitIsANoOpBranch) {
  torch::manual_seed(5);
  Linear l(16, 8, false);
  auto x = torch::randn({3, 16});
  auto before = l(x).detach();
  l->enable_lora(LoraOptions{});
  EXPECT_TRUE(torch::equal(l->lora_B->weight, torch::zeros({8, 8})));
  // A is kaiming-uniform(a = sqrt(5)): bound 1/sqrt(in).
  EXPECT_LE(l->lora_A->weight.abs().max().item<double>(), 1.0 / std::sqrt(16.0));
  EXPECT_GT(l->lora_A->weight.abs().max().item<double>(), 0);
  EXPECT_TRUE(torch::equal(l(x), before));
}

TEST(Lora, GradientsReachOnlyAAndBWhenTheBaseIsFrozen) {
  auto l = make_lora(false);
  l->weight.set_requires_grad(false);
  l->bias.set_requires_grad(false);
  auto x = torch::randn({4, 12});
  l(x).pow(2).sum().backward();
  EXPECT_FALSE(l->weight.grad().defined());
  EXPECT_FALSE(l->bias.grad().defined());
  ASSERT_TRUE(l->lora_A->weight.grad().defined());
  ASSERT_TRUE(l->lora_B->weight.grad().defined());
  EXPECT_GT(l->lora_A->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(l->lora_B->weight.grad().abs().sum().item<double>(), 0);
}

TEST(Lora, MergeGivesTheSameOutputsAndAPlainLinear) {
  for (bool rslora : {false, true}) {
    auto l = make_lora(rslora);
    auto x = torch::randn({2, 3, 12});
    torch::NoGradGuard ng;
    auto before = l(x);
    auto delta = torch::matmul(l->lora_B->weight, l->lora_A->weight) * l->lora_scaling();
    auto want_weight = l->weight + delta;
    l->merge_lora();
    EXPECT_FALSE(l->has_lora());
    const std::vector<std::string> names = {"weight", "bias"};
    EXPECT_EQ(l->named_parameters().keys(), names);
    EXPECT_TRUE(torch::allclose(l->weight, want_weight, 0, 1e-6));
    EXPECT_LE((l(x) - before).abs().max().item<double>(), 1e-5);
    EXPECT_THROW(l->merge_lora(), std::exception);
  }
}

TEST(Lora, DropoutOnlyInTrainingMode) {
  auto l = make_lora(false, /*dropout=*/0.5);
  auto x = torch::randn({64, 12});
  torch::NoGradGuard ng;
  auto base = torch::linear(x, l->weight, l->bias);
  auto branch = torch::linear(torch::linear(x, l->lora_A->weight), l->lora_B->weight) * 1.5;
  l->eval();
  EXPECT_LE((l(x) - (base + branch)).abs().max().item<double>(), 1e-5);
  l->train();
  torch::manual_seed(1);
  auto y1 = l(x);
  torch::manual_seed(2);
  auto y2 = l(x);
  EXPECT_FALSE(torch::allclose(y1, y2));
  // The dropout acts on the branch's input only: the same mask through torch::dropout.
  torch::manual_seed(1);
  auto dropped = torch::dropout(x, 0.5, true);
  auto want =
      base + torch::linear(torch::linear(dropped, l->lora_A->weight), l->lora_B->weight) * 1.5;
  EXPECT_LE((y1 - want).abs().max().item<double>(), 1e-5);
}

TEST(Lora, BranchFollowsTheBaseDtypeAndRejectsBadOptions) {
  Linear l(8, 8, false);
  l->to(torch::kBFloat16);
  l->enable_lora(LoraOptions{});
  EXPECT_EQ(l->lora_A->weight.scalar_type(), torch::kBFloat16);
  EXPECT_THROW(l->enable_lora(LoraOptions{}), std::exception);
  Linear m(8, 8, false);
  LoraOptions bad;
  bad.r = 0;
  EXPECT_THROW(m->enable_lora(bad), std::exception);
  EXPECT_FALSE(m->has_lora());
}

}  // namespace
}  // namespace reef
