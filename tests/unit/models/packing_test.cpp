// Packed sequences (nn/packing.h): three samples of different lengths laid end to end in one row,
// with positions restarting per sample and attention kept within each, must give exactly what the
// samples give run one by one: the same logits at every sample position, the same summed loss
// and the same gradient for every parameter. Checked for each architecture family (RoPE with
// GQA, Qwen3's q/k norms, Gemma, Mixtral's experts, GPT-2's learned positions). A layout that
// lets samples see each other (one segment for the row) must NOT match: the test can fail.
#include "reef/nn/packing.h"

#include <gtest/gtest.h>

#include <map>

#include "reef/models/causal_lm.h"
#include "tiny_model.h"

namespace reef {
namespace {

struct Result {
  double loss = 0;
  std::map<std::string, torch::Tensor> grads;
  std::vector<torch::Tensor> logits;  // per sample [L, V]
};

std::map<std::string, torch::Tensor> take_grads(CausalLM& m) {
  std::map<std::string, torch::Tensor> g;
  for (auto& p : m->named_parameters()) {
    if (p.value().grad().defined()) g[p.key()] = p.value().grad().clone();
    p.value().mutable_grad() = torch::Tensor();
  }
  return g;
}

const std::vector<int64_t> kLengths = {5, 7, 4};
constexpr int64_t kRow = 18;  // 16 sample tokens + 2 padding

// Packs the samples into one row; `one_segment` gives every token the same segment (wrong).
Result packed(CausalLM& m, const std::vector<torch::Tensor>& samples, bool one_segment) {
  auto ids = torch::zeros({1, kRow}, torch::kLong), pos = torch::zeros({1, kRow}, torch::kLong);
  auto seg = torch::zeros({1, kRow}, torch::kLong);
  auto targets = torch::full({1, kRow}, kIgnoreTarget, torch::kLong);
  int64_t at = 0;
  for (size_t s = 0; s < samples.size(); ++s) {
    const int64_t L = samples[s].size(0);
    ids[0].narrow(0, at, L).copy_(samples[s]);
    pos[0].narrow(0, at, L).copy_(torch::arange(L));
    seg[0].narrow(0, at, L).fill_(one_segment ? 1 : static_cast<int64_t>(s) + 1);
    targets[0].narrow(0, at, L - 1).copy_(samples[s].narrow(0, 1, L - 1));
    at += L;
  }
  pos[0].narrow(0, at, kRow - at).copy_(torch::arange(kRow - at));
  if (one_segment) pos[0].narrow(0, 0, at).copy_(torch::arange(at));
  PackedSequences layout(pos, seg);
  auto logits = m->forward_train(ids, &layout).logits;
  auto loss = causal_lm_loss_sum(logits, targets);
  loss.backward();
  Result r;
  r.loss = loss.item<double>();
  r.grads = take_grads(m);
  at = 0;
  for (const auto& s : samples) {
    r.logits.push_back(logits[0].narrow(0, at, s.size(0)).detach());
    at += s.size(0);
  }
  return r;
}

Result one_by_one(CausalLM& m, const std::vector<torch::Tensor>& samples) {
  Result r;
  torch::Tensor total;
  for (const auto& s : samples) {
    auto logits = m->forward_train(s.unsqueeze(0)).logits;  // [1, L, V]
    const int64_t L = s.size(0);
    auto loss = causal_lm_loss_sum(logits.narrow(1, 0, L - 1), s.narrow(0, 1, L - 1).unsqueeze(0));
    total = total.defined() ? total + loss : loss;
    r.logits.push_back(logits[0].detach());
  }
  total.backward();
  r.loss = total.item<double>();
  r.grads = take_grads(m);
  return r;
}

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / (b.abs().max() + 1e-12)).item<double>();
}

class Packing : public ::testing::TestWithParam<std::string> {};

TEST_P(Packing, PackedBatchEqualsSamplesOneByOne) {
  torch::manual_seed(5);
  CausalLM m(testing::tiny_model(GetParam()));
  {
    // Larger weights than the 0.02 init: attention far from uniform, so leaks would show.
    torch::NoGradGuard ng;
    for (auto& p : m->parameters())
      if (p.dim() >= 2) p.normal_(0.0, 0.3);
  }
  std::vector<torch::Tensor> samples;
  for (int64_t L : kLengths) samples.push_back(torch::randint(0, 40, {L}, torch::kLong));
  Result a = packed(m, samples, /*one_segment=*/false);
  Result b = one_by_one(m, samples);
  EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::abs(b.loss));
  for (size_t s = 0; s < samples.size(); ++s)
    EXPECT_LT(max_rel_diff(a.logits[s], b.logits[s]), 1e-5) << "sample " << s;
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (const auto& [name, g] : b.grads) {
    ASSERT_TRUE(a.grads.count(name)) << name;
    EXPECT_LT(max_rel_diff(a.grads.at(name), g), 1e-4) << name;
  }
  // Samples that see each other give other numbers (the comparison above can fail).
  Result wrong = packed(m, samples, /*one_segment=*/true);
  EXPECT_GT(std::abs(wrong.loss - b.loss), 1e-3 * std::abs(b.loss));
  EXPECT_GT(max_rel_diff(wrong.logits[1], b.logits[1]), 1e-2);
}

// A shared prefix (negative segment id) and two continuations of it in one row, each continuation
// starting with the prefix's last token again: the logits of each continuation and the gradient
// of their summed loss equal those of the two whole sequences run one by one (what a preference
// pair's prompt, chosen and rejected are: data/preference_dataset.h).
TEST_P(Packing, SharedPrefixEqualsTheWholeSequences) {
  torch::manual_seed(6);
  CausalLM m(testing::tiny_model(GetParam()));
  {
    torch::NoGradGuard ng;
    for (auto& p : m->parameters())
      if (p.dim() >= 2) p.normal_(0.0, 0.3);
  }
  const int64_t P = 5;  // prefix tokens: 4 shared + the last one at each continuation's start
  auto prefix = torch::randint(0, 40, {P}, torch::kLong);
  std::vector<torch::Tensor> whole = {torch::cat({prefix, torch::randint(0, 40, {4})}),
                                      torch::cat({prefix, torch::randint(0, 40, {6})})};
  const int64_t T = (P - 1) + (whole[0].size(0) - P + 1) + (whole[1].size(0) - P + 1) + 2;
  auto ids = torch::zeros({1, T}, torch::kLong), pos = torch::zeros({1, T}, torch::kLong);
  auto seg = torch::zeros({1, T}, torch::kLong);
  auto targets = torch::full({1, T}, kIgnoreTarget, torch::kLong);
  ids[0].narrow(0, 0, P - 1).copy_(prefix.narrow(0, 0, P - 1));
  pos[0].narrow(0, 0, P - 1).copy_(torch::arange(P - 1));
  seg[0].narrow(0, 0, P - 1).fill_(-1);
  std::vector<int64_t> starts;
  int64_t at = P - 1;
  for (size_t s = 0; s < whole.size(); ++s) {
    const int64_t n = whole[s].size(0) - (P - 1);  // from the prefix's last token on
    ids[0].narrow(0, at, n).copy_(whole[s].narrow(0, P - 1, n));
    pos[0].narrow(0, at, n).copy_(torch::arange(P - 1, whole[s].size(0)));
    seg[0].narrow(0, at, n).fill_(static_cast<int64_t>(s) + 1);
    targets[0].narrow(0, at, n - 1).copy_(whole[s].narrow(0, P, n - 1));
    starts.push_back(at);
    at += n;
  }
  PackedSequences layout(pos, seg);
  auto logits = m->forward_train(ids, &layout).logits;
  auto loss = causal_lm_loss_sum(logits, targets);
  loss.backward();
  auto packed_grads = take_grads(m);
  torch::Tensor total;
  for (size_t s = 0; s < whole.size(); ++s) {
    const int64_t L = whole[s].size(0);
    auto full = m->forward_train(whole[s].unsqueeze(0)).logits;  // [1, L, V]
    auto part = torch::full({1, L}, kIgnoreTarget, torch::kLong);
    part[0].narrow(0, P - 1, L - P).copy_(whole[s].narrow(0, P, L - P));
    auto l = causal_lm_loss_sum(full, part);
    total = total.defined() ? total + l : l;
    const int64_t n = L - (P - 1);
    EXPECT_LT(max_rel_diff(logits[0].narrow(0, starts[s], n).detach(),
                           full[0].narrow(0, P - 1, n).detach()),
              1e-5)
        << "continuation " << s;
  }
  total.backward();
  EXPECT_NEAR(loss.item<double>(), total.item<double>(), 1e-5 * std::abs(total.item<double>()));
  for (const auto& [name, g] : take_grads(m)) {
    ASSERT_TRUE(packed_grads.count(name)) << name;
    EXPECT_LT(max_rel_diff(packed_grads.at(name), g), 1e-4) << name;
  }
  // Without the shared rule (the prefix as a sample of its own) the continuations lose it.
  PackedSequences isolated(pos, seg.abs());
  auto wrong = m->forward_train(ids, &isolated).logits;
  EXPECT_GT(max_rel_diff(wrong[0].narrow(0, starts[1], 3).detach(),
                         logits[0].narrow(0, starts[1], 3).detach()),
            1e-2);
}

INSTANTIATE_TEST_SUITE_P(Archs, Packing,
                         ::testing::Values("llama", "qwen3", "gemma", "mixtral", "gpt2"));

TEST(PackedSequences, PrefixJoinsTheFirstSample) {
  // Row: sample A (3 tokens), sample B (2 tokens), 1 padding; a prefix of 2 goes before A.
  auto pos = torch::tensor({{0, 1, 2, 0, 1, 0}}, torch::kLong);
  auto seg = torch::tensor({{1, 1, 1, 2, 2, 0}}, torch::kLong);
  PackedSequences p = PackedSequences(pos, seg).with_prefix(2);
  EXPECT_TRUE(torch::equal(p.positions(1, 8, torch::kCPU),
                           torch::tensor({{0, 1, 2, 3, 4, 0, 1, 0}}, torch::kLong)));
  auto mask = p.mask()[0][0];             // [8, 8]
  EXPECT_TRUE(mask[4][0].item<bool>());   // A's last token sees the prefix
  EXPECT_FALSE(mask[5][0].item<bool>());  // B does not
  EXPECT_FALSE(mask[5][4].item<bool>());  // nor A
  EXPECT_TRUE(mask[6][5].item<bool>());
  EXPECT_FALSE(mask[2][3].item<bool>());  // causal
}

TEST(PackedSequences, SharedPrefixIsSeenByLaterSamples) {
  // Row: a shared prefix (2 tokens), sample A (2), sample B (2), 1 padding; then 1 virtual token.
  auto pos = torch::tensor({{0, 1, 2, 3, 2, 3, 0}}, torch::kLong);
  auto seg = torch::tensor({{-1, -1, 1, 1, 2, 2, 0}}, torch::kLong);
  PackedSequences p(pos, seg);
  auto mask = p.mask()[0][0];  // [7, 7]
  EXPECT_TRUE(mask[3][0].item<bool>());
  EXPECT_TRUE(mask[5][1].item<bool>());   // B sees the prefix
  EXPECT_FALSE(mask[5][3].item<bool>());  // but not A
  EXPECT_FALSE(mask[0][1].item<bool>());  // causal within the prefix
  PackedSequences v = p.with_prefix(1);
  EXPECT_TRUE(torch::equal(v.positions(1, 8, torch::kCPU),
                           torch::tensor({{0, 1, 2, 3, 4, 3, 4, 0}}, torch::kLong)));
  EXPECT_TRUE(v.mask()[0][0][6][0].item<bool>());  // B sees the virtual token
}

}  // namespace
}  // namespace reef
