// Sparse MoE: the grouped-by-expert block against a naive per-token loop over the chosen
// experts (and a dense all-experts reference with the routing mask), the top-k routing rule,
// the load-balancing loss against its textbook definition, gradients against finite
// differences, and the Hub's Mixtral parameter names.
#include "reef/nn/moe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "gradcheck.h"
#include "reef/base/error.h"

namespace reef {
namespace {

SparseMoE make_moe(int64_t E, int64_t k, torch::ScalarType dtype = torch::kFloat) {
  SparseMoE moe(SparseMoEOptions(12, 20, E, k));
  moe->to(dtype);
  torch::NoGradGuard g;
  for (auto& p : moe->parameters()) p.normal_(0.0, 0.3);
  return moe;
}

// The definition, one token at a time: softmax over experts, the k largest, renormalised,
// sum of weight * expert(x).
torch::Tensor naive_moe(SparseMoE& moe, const torch::Tensor& x) {
  const int64_t k = moe->options().top_k();
  auto flat = x.reshape({-1, x.size(-1)});
  std::vector<torch::Tensor> rows;
  for (int64_t n = 0; n < flat.size(0); ++n) {
    auto row = flat[n].unsqueeze(0);
    auto probs = torch::softmax(moe->gate(row).to(torch::kDouble), -1)[0];
    std::vector<int64_t> order(probs.size(0));
    std::iota(order.begin(), order.end(), 0);
    auto acc = probs.accessor<double, 1>();
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return acc[a] > acc[b]; });
    double total = 0;
    for (int64_t j = 0; j < k; ++j) total += acc[order[j]];
    auto y = torch::zeros_like(row);
    for (int64_t j = 0; j < k; ++j)
      y = y + moe->experts->at<ExpertMLPImpl>(order[j]).forward(row) * (acc[order[j]] / total);
    rows.push_back(y);
  }
  return torch::cat(rows, 0).view(x.sizes());
}

TEST(SparseMoE, MatchesNaivePerTokenLoop) {
  torch::manual_seed(0);
  for (auto [E, k] : std::vector<std::pair<int64_t, int64_t>>{{4, 2}, {8, 2}, {5, 1}, {3, 3}}) {
    auto moe = make_moe(E, k);
    auto x = torch::randn({3, 7, 12});
    torch::NoGradGuard g;
    auto y = moe(x);
    ASSERT_EQ(y.sizes(), x.sizes());
    EXPECT_LE((y - naive_moe(moe, x)).abs().max().item<double>(), 1e-5) << E << " " << k;
  }
}

TEST(SparseMoE, EqualsDenseMixtureUnderTheRoutingMask) {
  // Every expert on every token, weighted by a [N, E] matrix that is zero off the top-k.
  torch::manual_seed(1);
  auto moe = make_moe(6, 2, torch::kDouble);
  auto x = torch::randn({2, 9, 12}, torch::kDouble);
  torch::NoGradGuard g;
  auto flat = x.reshape({-1, 12});
  auto r = route_top_k(moe->gate(flat), 2);
  auto mask = torch::zeros({flat.size(0), 6}, torch::kDouble)
                  .scatter(1, r.experts, r.weights.to(torch::kDouble));
  auto dense = torch::zeros_like(flat);
  for (int64_t e = 0; e < 6; ++e)
    dense =
        dense + moe->experts->at<ExpertMLPImpl>(e).forward(flat) * mask.select(1, e).unsqueeze(1);
  EXPECT_LE((moe(x).reshape({-1, 12}) - dense).abs().max().item<double>(), 1e-6);
}

TEST(TopKRouting, RenormalisedSoftmaxOfTheLargest) {
  auto logits = torch::tensor({{1.0f, 3.0f, 2.0f, 0.0f}, {0.5f, 0.5f, 4.0f, -1.0f}});
  auto r = route_top_k(logits, 2);
  EXPECT_EQ(r.weights.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(r.experts, torch::tensor({{1, 2}, {2, 0}}, torch::kLong)) ||
              torch::equal(r.experts, torch::tensor({{1, 2}, {2, 1}}, torch::kLong)));
  // Renormalised top-2 of a softmax is the softmax of the two logits.
  const double e = std::exp(1.0);
  EXPECT_NEAR(r.weights[0][0].item<double>(), e / (e + 1), 1e-6);
  EXPECT_NEAR(r.weights[0][1].item<double>(), 1 / (e + 1), 1e-6);
  auto sums = r.weights.sum(-1);
  EXPECT_TRUE(torch::allclose(sums, torch::ones({2})));
  // bf16 logits are routed in float32.
  auto rb = route_top_k(logits.to(torch::kBFloat16), 2);
  EXPECT_EQ(rb.weights.scalar_type(), torch::kFloat);
}

TEST(LoadBalancingLoss, SwitchTransformerDefinition) {
  torch::manual_seed(2);
  const int64_t E = 5, k = 2;
  std::vector<torch::Tensor> layers = {torch::randn({7, E}, torch::kDouble),
                                       torch::randn({4, E}, torch::kDouble)};
  // f_e: selections of e over all (token, slot) pairs of all layers, per token row; P_e: mean
  // probability of e over all rows.
  auto all = torch::cat(layers, 0);
  auto probs = torch::softmax(all, -1);
  auto chosen = std::get<1>(probs.topk(k, -1));
  double expect = 0;
  for (int64_t e = 0; e < E; ++e) {
    const double f = chosen.eq(e).sum().item<double>() / static_cast<double>(all.size(0));
    const double P = probs.select(1, e).mean().item<double>();
    expect += f * P;
  }
  expect *= E;
  auto got = load_balancing_loss(layers, E, k);
  EXPECT_EQ(got.scalar_type(), torch::kDouble);  // float64 stays float64; else float32
  EXPECT_NEAR(got.item<double>(), expect, 1e-12);
  std::vector<torch::Tensor> as_float = {layers[0].to(torch::kFloat), layers[1].to(torch::kFloat)};
  EXPECT_EQ(load_balancing_loss(as_float, E, k).scalar_type(), torch::kFloat);
  EXPECT_NEAR(load_balancing_loss(as_float, E, k).item<double>(), expect, 1e-5);
  // Perfectly uniform routing probabilities give k (each f_e = k/E, P_e = 1/E).
  EXPECT_NEAR(load_balancing_loss({torch::zeros({6, 4})}, 4, 2).item<double>(), 2.0, 1e-6);
  EXPECT_EQ(load_balancing_loss({}, 4, 2).item<double>(), 0.0);
}

TEST(SparseMoE, GradientsMatchFiniteDifferences) {
  torch::manual_seed(3);
  SparseMoE moe(SparseMoEOptions(4, 6, 3, 2));
  moe->to(torch::kDouble);
  auto x = torch::randn({1, 5, 4}, torch::kDouble).requires_grad_(true);
  // The input, the router and one weight of each kind of expert matrix (all would be slow).
  std::vector<torch::Tensor> inputs = {
      x, moe->gate->weight, moe->experts->at<ExpertMLPImpl>(0).w1->weight,
      moe->experts->at<ExpertMLPImpl>(1).w2->weight, moe->experts->at<ExpertMLPImpl>(2).w3->weight};
  auto w = torch::randn({1, 5, 4}, torch::kDouble);
  std::vector<torch::Tensor> logits;
  auto loss = [&] {
    logits.clear();
    return (moe(x, &logits) * w).sum() + load_balancing_loss(logits, 3, 2).to(torch::kDouble);
  };
  // Finite steps small enough never to flip a top-k choice on these random logits.
  EXPECT_LE(testing::gradient_error(loss, inputs), 1.0);
}

TEST(SparseMoE, RouterLogitsAndNames) {
  auto moe = make_moe(3, 1);
  std::vector<std::string> names;
  for (const auto& p : moe->named_parameters()) names.push_back(p.key());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"experts.0.w1.weight", "experts.0.w2.weight",
                                             "experts.0.w3.weight", "experts.1.w1.weight",
                                             "experts.1.w2.weight", "experts.1.w3.weight",
                                             "experts.2.w1.weight", "experts.2.w2.weight",
                                             "experts.2.w3.weight", "gate.weight"}));
  std::vector<torch::Tensor> logits;
  moe(torch::randn({2, 3, 12}), &logits);
  ASSERT_EQ(logits.size(), 1u);
  EXPECT_EQ(logits[0].sizes(), (std::vector<int64_t>{6, 3}));
  EXPECT_THROW(SparseMoE(SparseMoEOptions(4, 4, 2, 3)), Error);
}

}  // namespace
}  // namespace reef
