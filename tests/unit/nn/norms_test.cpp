// RMSNorm and LayerNorm: values against the textbook formulas, gradients against finite
// differences, and parameter names/initial values as HF checkpoints expect.
#include "reef/nn/norms.h"

#include <gtest/gtest.h>

#include "gradcheck.h"

namespace reef {
namespace {

using testing::gradient_error;

TEST(RMSNorm, MatchesFormula) {
  torch::manual_seed(0);
  RMSNorm norm(RMSNormOptions(16).eps(1e-6));
  norm->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    norm->weight.uniform_(0.5, 1.5);
  }
  auto x = torch::randn({3, 5, 16}, torch::kDouble) * 3;
  auto expect = x / torch::sqrt(x.pow(2).mean(-1, true) + 1e-6) * norm->weight;
  EXPECT_TRUE(torch::allclose(norm(x), expect, 1e-12, 1e-12));
}

TEST(RMSNorm, Float32MatchesFormulaAndKeepsDtype) {
  torch::manual_seed(1);
  RMSNorm norm(RMSNormOptions(8));
  auto x = torch::randn({4, 8});
  auto y = norm(x);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  auto xd = x.to(torch::kDouble);
  auto expect = xd / torch::sqrt(xd.pow(2).mean(-1, true) + 1e-5);
  EXPECT_LT((y.to(torch::kDouble) - expect).abs().max().item<double>(), 1e-6);
}

TEST(RMSNorm, ParametersAndReset) {
  RMSNorm norm(RMSNormOptions(6));
  auto params = norm->named_parameters();
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0].key(), "weight");
  {
    torch::NoGradGuard g;
    norm->weight.fill_(3.0);
  }
  norm->reset_parameters();
  EXPECT_TRUE(torch::equal(norm->weight, torch::ones({6})));
}

TEST(RMSNorm, GradientsMatchFiniteDifferences) {
  torch::manual_seed(2);
  RMSNorm norm(RMSNormOptions(5).eps(1e-5));
  norm->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    norm->weight.uniform_(0.5, 1.5);
  }
  auto x = torch::randn({2, 3, 5}, torch::kDouble).requires_grad_();
  auto w = torch::randn({2, 3, 5}, torch::kDouble);
  auto loss = [&] { return testing::weighted_sum(norm(x), w); };
  EXPECT_LE(gradient_error(loss, {x, norm->weight}), 1.0);
}

TEST(RMSNorm, GemmaUnitOffsetMatchesFormula) {
  torch::manual_seed(4);
  RMSNorm norm(RMSNormOptions(8).eps(1e-6).unit_offset(true));
  EXPECT_TRUE(torch::equal(norm->weight, torch::zeros({8})));  // (1 + 0) = identity scale
  {
    torch::NoGradGuard g;
    norm->weight.uniform_(-0.5, 0.5);
  }
  auto x = torch::randn({3, 8}) * 2;
  auto xd = x.to(torch::kDouble);
  auto expect =
      xd / torch::sqrt(xd.pow(2).mean(-1, true) + 1e-6) * (1 + norm->weight.to(torch::kDouble));
  EXPECT_LT((norm(x).to(torch::kDouble) - expect).abs().max().item<double>(), 1e-5);
  // bf16 input: the product is taken in float32 and rounded once at the end (HF GemmaRMSNorm),
  // unlike the llama norm, which rounds before multiplying by the weight.
  auto xb = x.to(torch::kBFloat16);
  auto xf = xb.to(torch::kFloat);
  auto want = (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + 1e-6) * (1 + norm->weight))
                  .to(torch::kBFloat16);
  auto got = norm(xb);
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(got, want));
  norm->reset_parameters();
  EXPECT_TRUE(torch::equal(norm->weight, torch::zeros({8})));
}

TEST(LayerNorm, MatchesFormula) {
  torch::manual_seed(3);
  LayerNorm norm(LayerNormOptions(12).eps(1e-5));
  norm->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    norm->weight.uniform_(0.5, 1.5);
    norm->bias.uniform_(-1, 1);
  }
  auto x = torch::randn({2, 7, 12}, torch::kDouble) * 2 + 1;
  auto mean = x.mean(-1, true);
  auto var = (x - mean).pow(2).mean(-1, true);  // biased, as LayerNorm uses
  auto expect = (x - mean) / torch::sqrt(var + 1e-5) * norm->weight + norm->bias;
  EXPECT_TRUE(torch::allclose(norm(x), expect, 1e-12, 1e-12));
}

TEST(LayerNorm, ParametersAndReset) {
  LayerNorm with_bias(LayerNormOptions(4));
  auto params = with_bias->named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].key(), "weight");
  EXPECT_EQ(params[1].key(), "bias");
  {
    torch::NoGradGuard g;
    with_bias->weight.fill_(2.0);
    with_bias->bias.fill_(2.0);
  }
  with_bias->reset_parameters();
  EXPECT_TRUE(torch::equal(with_bias->weight, torch::ones({4})));
  EXPECT_TRUE(torch::equal(with_bias->bias, torch::zeros({4})));

  LayerNorm no_bias(LayerNormOptions(4).bias(false));
  EXPECT_EQ(no_bias->named_parameters().size(), 1u);
  auto x = torch::randn({3, 4});
  auto xd = x.to(torch::kDouble);
  auto expect = (xd - xd.mean(-1, true)) / torch::sqrt(xd.var(-1, false, true) + 1e-5);
  EXPECT_LT((no_bias(x).to(torch::kDouble) - expect).abs().max().item<double>(), 1e-5);
}

TEST(LayerNorm, GradientsMatchFiniteDifferences) {
  torch::manual_seed(4);
  LayerNorm norm(LayerNormOptions(6));
  norm->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    norm->weight.uniform_(0.5, 1.5);
    norm->bias.uniform_(-1, 1);
  }
  auto x = torch::randn({2, 4, 6}, torch::kDouble).requires_grad_();
  auto w = torch::randn({2, 4, 6}, torch::kDouble);
  auto loss = [&] { return testing::weighted_sum(norm(x), w); };
  EXPECT_LE(gradient_error(loss, {x, norm->weight, norm->bias}), 1.0);
}

}  // namespace
}  // namespace reef
