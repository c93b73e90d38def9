// Linear against torch::nn::Linear: the same parameters, the same random initial values for the
// same seed, and at::linear's fused bias in reduced precision; SkipInitGuard and
// Embedding skip the random draws.
#include "reef/nn/linear.h"

#include <gtest/gtest.h>

#include "reef/nn/embedding.h"
#include "reef/nn/init.h"

namespace reef {
namespace {

TEST(Linear, InitialisesLikeTorch) {
  for (bool bias : {true, false}) {
    torch::manual_seed(7);
    torch::nn::Linear ref(torch::nn::LinearOptions(24, 10).bias(bias));
    const auto after_ref = torch::rand({1});
    torch::manual_seed(7);
    Linear ours(24, 10, bias);
    const auto after_ours = torch::rand({1});
    EXPECT_TRUE(torch::equal(ours->weight, ref->weight));
    EXPECT_EQ(ours->bias.defined(), bias);
    if (bias) EXPECT_TRUE(torch::equal(ours->bias, ref->bias));
    // The same number of random draws: what is built afterwards is unchanged.
    EXPECT_TRUE(torch::equal(after_ours, after_ref));
    auto names = ours->named_parameters().keys();
    const std::vector<std::string> want =
        bias ? std::vector<std::string>{"weight", "bias"} : std::vector<std::string>{"weight"};
    EXPECT_EQ(names, want);
  }
}

TEST(Linear, ForwardIsAtLinearWithOneRounding) {
  torch::manual_seed(3);
  Linear l(64, 48, true);
  l->to(torch::kBFloat16);
  auto x = torch::randn({2, 16, 64}).to(torch::kBFloat16);  // [B, T, C]
  torch::NoGradGuard ng;
  auto y = l(x);
  EXPECT_TRUE(torch::equal(y, torch::linear(x, l->weight, l->bias)));
  // The reference: one float32 product plus bias, rounded once, as addmm does.
  auto exact = (torch::matmul(x.to(torch::kFloat), l->weight.to(torch::kFloat).t()) +
                l->bias.to(torch::kFloat));
  auto fused_err = (y.to(torch::kFloat) - exact).abs().max().item<double>();
  auto two_step = torch::nn::functional::linear(x, l->weight, l->bias);
  auto two_step_err = (two_step.to(torch::kFloat) - exact).abs().max().item<double>();
  EXPECT_LE(fused_err, two_step_err);
  EXPECT_FALSE(torch::equal(y, two_step)) << "the two roundings should differ somewhere";
}

TEST(SkipInit, NoRandomDraws) {
  torch::manual_seed(11);
  const auto expected = torch::rand({4});
  torch::manual_seed(11);
  {
    SkipInitGuard guard;
    EXPECT_TRUE(skip_init());
    Linear l(32, 16, true);
    Embedding e(50, 8);
    EXPECT_EQ(e->weight.sizes(), (std::vector<int64_t>{50, 8}));
    EXPECT_TRUE(e->weight.requires_grad());
    { SkipInitGuard nested; }
    EXPECT_TRUE(skip_init()) << "a nested guard restores, not clears";
  }
  EXPECT_FALSE(skip_init());
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected)) << "construction drew random numbers";
}

}  // namespace
}  // namespace reef
