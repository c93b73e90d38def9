// RoPE: frequencies (plain, linear, llama3 scaling) against independent formulas, the
// rotate_half layout, the relative-position property and gradients by finite differences.
#include "reef/nn/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.h"
#include "reef/base/error.h"

namespace reef {
namespace {

double plain_inv_freq(int64_t i, int64_t dim, double theta) {
  return 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
}

TEST(Rope, PlainFrequencies) {
  auto f = rope_inv_freq(RopeOptions(16).theta(500000.0));
  ASSERT_EQ(f.numel(), 8);
  EXPECT_EQ(f.scalar_type(), torch::kFloat);
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_NEAR(f[i].item<double>() / plain_inv_freq(i, 16, 500000.0), 1.0, 1e-6) << i;
  }
}

TEST(Rope, LinearScalingDividesEveryFrequency) {
  auto plain = rope_inv_freq(RopeOptions(8));
  auto scaled = rope_inv_freq(RopeOptions(8).scaling("linear").factor(4.0));
  EXPECT_TRUE(torch::allclose(scaled * 4.0, plain));
}

TEST(Rope, Llama3ScalingMatchesPiecewiseFormula) {
  // A short original context puts the 8 frequencies of a 16-wide head in all three bands.
  const double factor = 8, low = 1, high = 4, old_len = 64;
  auto opts = RopeOptions(16)
                  .scaling("llama3")
                  .factor(factor)
                  .low_freq_factor(low)
                  .high_freq_factor(high)
                  .original_max_seq_len(64);
  auto f = rope_inv_freq(opts);
  int kept = 0, divided = 0, blended = 0;
  for (int64_t i = 0; i < 8; ++i) {
    const double base = plain_inv_freq(i, 16, 10000.0);
    const double wavelen = 2 * M_PI / base;
    double expect;
    if (wavelen < old_len / high) {
      expect = base, ++kept;
    } else if (wavelen > old_len / low) {
      expect = base / factor, ++divided;
    } else {
      const double s = (old_len / wavelen - low) / (high - low);
      expect = (1 - s) * base / factor + s * base, ++blended;
    }
    EXPECT_NEAR(f[i].item<double>() / expect, 1.0, 1e-5) << i;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

TEST(Rope, RejectsUnknownScalingAndOddHeadDim) {
  EXPECT_THROW(rope_inv_freq(RopeOptions(8).scaling("yarn")), Error);
  EXPECT_THROW(rope_inv_freq(RopeOptions(7)), Error);
}

TEST(Rope, RotateHalfLayout) {
  auto x = torch::tensor({1.0, 2.0, 3.0, 4.0});
  EXPECT_TRUE(torch::equal(rotate_half(x), torch::tensor({-3.0, -4.0, 1.0, 2.0})));
}

TEST(Rope, CosSinAtOffsetIsASliceOfTheFullTable) {
  RotaryEmbedding rope(RopeOptions(8));
  auto [cos_all, sin_all] = rope.cos_sin(0, 10, torch::kFloat, torch::kCPU);
  auto [cos_tail, sin_tail] = rope.cos_sin(6, 4, torch::kFloat, torch::kCPU);
  EXPECT_TRUE(torch::equal(cos_all.slice(0, 6), cos_tail));
  EXPECT_TRUE(torch::equal(sin_all.slice(0, 6), sin_tail));
  EXPECT_EQ(cos_all.sizes(), (std::vector<int64_t>{10, 8}));
  // Position 0 is the identity rotation.
  EXPECT_TRUE(torch::equal(cos_all[0], torch::ones({8})));
  EXPECT_TRUE(torch::equal(sin_all[0], torch::zeros({8})));
}

// q.k after rotating q to position m and k to position n depends only on m - n.
void expect_relative(const RopeOptions& opts) {
  torch::manual_seed(5);
  RotaryEmbedding rope(opts);
  const int64_t d = opts.head_dim();
  auto q = torch::randn({1, 1, 1, d}, torch::kDouble);
  auto k = torch::randn({1, 1, 1, d}, torch::kDouble);
  auto score = [&](int64_t m, int64_t n) {
    auto [cm, sm] = rope.cos_sin(m, 1, torch::kDouble, torch::kCPU);
    auto [cn, sn] = rope.cos_sin(n, 1, torch::kDouble, torch::kCPU);
    return (apply_rotary(q, cm, sm) * apply_rotary(k, cn, sn)).sum().item<double>();
  };
  for (int64_t delta : {0, 1, 3, 17}) {
    const double ref = score(delta, 0);
    for (int64_t n : {1, 5, 40, 300})
      EXPECT_NEAR(score(n + delta, n), ref, 1e-9) << delta << " " << n;
  }
  // ... and it does depend on the difference.
  EXPECT_GT(std::abs(score(3, 0) - score(0, 0)), 1e-3);
}

TEST(Rope, RelativePositionProperty) {
  expect_relative(RopeOptions(16));
  expect_relative(
      RopeOptions(16).theta(500000.0).scaling("llama3").factor(8).original_max_seq_len(64));
}

TEST(Rope, GradientsMatchFiniteDifferences) {
  torch::manual_seed(6);
  for (const char* scaling : {"none", "llama3"}) {
    RotaryEmbedding rope(RopeOptions(8).scaling(scaling).factor(4).original_max_seq_len(32));
    auto table = rope.cos_sin(3, 5, torch::kDouble, torch::kCPU);
    auto cos = table.first, sin = table.second;
    auto x = torch::randn({2, 3, 5, 8}, torch::kDouble).requires_grad_();
    auto w = torch::randn({2, 3, 5, 8}, torch::kDouble);
    auto loss = [&] { return testing::weighted_sum(apply_rotary(x, cos, sin), w); };
    EXPECT_LE(testing::gradient_error(loss, {x}), 1.0) << scaling;
  }
}

TEST(Rope, RotationPreservesNorm) {
  RotaryEmbedding rope(RopeOptions(8));
  auto [cos, sin] = rope.cos_sin(0, 7, torch::kDouble, torch::kCPU);
  auto x = torch::randn({1, 2, 7, 8}, torch::kDouble);
  EXPECT_TRUE(torch::allclose(apply_rotary(x, cos, sin).norm(2, -1), x.norm(2, -1), 1e-12, 1e-12));
}

}  // namespace
}  // namespace reef
