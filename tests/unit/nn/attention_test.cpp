// Causal attention: the SDPA core against a naive softmax(QK^T/sqrt(D)) V with explicit masks
// (MHA, GQA, MQA; with and without history), causality, KV-cache equivalence, parameter names,
// and gradients by finite differences in float64.
#include "reef/nn/attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.h"
#include "reef/base/error.h"
#include "reef/nn/rope.h"

namespace reef {
namespace {

// Reference: queries at the last T of S positions, kv heads repeated, float64 math.
torch::Tensor naive_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v) {
  const int64_t t = q.size(2), s = k.size(2), d = q.size(3);
  const int64_t rep = q.size(1) / k.size(1);
  auto kr = k.repeat_interleave(rep, 1), vr = v.repeat_interleave(rep, 1);
  auto scores = torch::matmul(q, kr.transpose(-1, -2)) / std::sqrt(static_cast<double>(d));
  auto mask = torch::ones({t, s}, torch::kBool).tril(s - t);  // query i sees keys <= s-t+i
  scores = scores.masked_fill(mask.logical_not(), -INFINITY);
  return torch::matmul(torch::softmax(scores, -1), vr);
}

TEST(CausalAttention, MatchesNaiveForAllShapes) {
  torch::manual_seed(0);
  struct Case {
    int64_t h, hkv, t, s;
  };
  for (auto c : {Case{4, 4, 6, 6}, Case{4, 2, 6, 6}, Case{4, 1, 5, 5}, Case{4, 2, 3, 8},
                 Case{4, 2, 1, 9}, Case{2, 2, 4, 4}, Case{6, 3, 2, 7}}) {
    auto q = torch::randn({2, c.h, c.t, 8}, torch::kDouble);
    auto k = torch::randn({2, c.hkv, c.s, 8}, torch::kDouble);
    auto v = torch::randn({2, c.hkv, c.s, 8}, torch::kDouble);
    auto got = causal_attention(q, k, v);
    EXPECT_TRUE(torch::allclose(got, naive_attention(q, k, v), 1e-10, 1e-10))
        << "H=" << c.h << " Hkv=" << c.hkv << " T=" << c.t << " S=" << c.s;
  }
}

TEST(CausalAttention, RepeatKvOrderMatchesHF) {
  // kv head j serves query heads j*n_rep .. j*n_rep+n_rep-1.
  auto x = torch::arange(2, torch::kDouble).view({1, 2, 1, 1});
  auto r = repeat_kv(x, 3).flatten();
  EXPECT_TRUE(torch::equal(r, torch::tensor({0.0, 0.0, 0.0, 1.0, 1.0, 1.0}, torch::kDouble)));
}

AttentionOptions small_gqa() { return AttentionOptions(16, 4).n_kv_heads(2).head_dim(4); }

TEST(Attention, ParameterNamesAndShapes) {
  Attention plain(small_gqa());
  std::vector<std::string> names;
  for (const auto& p : plain->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"q_proj.weight", "k_proj.weight", "v_proj.weight",
                                             "o_proj.weight"}));
  EXPECT_EQ(plain->k_proj->weight.sizes(), (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(plain->q_proj->weight.sizes(), (std::vector<int64_t>{16, 16}));

  Attention qwen(small_gqa().qkv_bias(true).qk_norm(true));
  names.clear();
  for (const auto& p : qwen->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"q_proj.weight", "q_proj.bias", "k_proj.weight",
                                             "k_proj.bias", "v_proj.weight", "v_proj.bias",
                                             "o_proj.weight", "q_norm.weight", "k_norm.weight"}));
  EXPECT_TRUE(qwen->named_buffers().is_empty());
}

TEST(Attention, RejectsBadHeadCounts) {
  EXPECT_THROW(Attention(AttentionOptions(16, 4).n_kv_heads(3)), Error);
  EXPECT_THROW(Attention(AttentionOptions(15, 4)), Error);
}

TEST(Attention, IsCausal) {
  torch::manual_seed(1);
  Attention attn(small_gqa());
  RotaryEmbedding rope(RopeOptions(4));
  auto cs = rope.cos_sin(0, 6, torch::kFloat, torch::kCPU);
  auto x = torch::randn({2, 6, 16});
  auto y = attn(x, cs.first, cs.second);
  auto x2 = x.clone();
  x2.slice(1, 4).normal_();  // change the future
  auto y2 = attn(x2, cs.first, cs.second);
  EXPECT_TRUE(torch::allclose(y.slice(1, 0, 4), y2.slice(1, 0, 4), 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(y.slice(1, 4), y2.slice(1, 4), 1e-3, 1e-3));
}

TEST(Attention, CacheGivesTheSameOutputs) {
  torch::manual_seed(2);
  Attention attn(small_gqa().qk_norm(true));
  attn->to(torch::kDouble);
  RotaryEmbedding rope(RopeOptions(4));
  auto x = torch::randn({2, 7, 16}, torch::kDouble);
  auto full_cs = rope.cos_sin(0, 7, torch::kDouble, torch::kCPU);
  auto full = attn(x, full_cs.first, full_cs.second);

  KVCache cache;
  std::vector<torch::Tensor> parts;
  int64_t pos = 0;
  for (int64_t len : {3, 1, 2, 1}) {  // chunked prefill, single tokens, a later chunk
    auto cs = rope.cos_sin(pos, len, torch::kDouble, torch::kCPU);
    parts.push_back(attn(x.slice(1, pos, pos + len), cs.first, cs.second, &cache, 0));
    pos += len;
    EXPECT_EQ(cache.length(), pos);
  }
  EXPECT_TRUE(torch::allclose(torch::cat(parts, 1), full, 1e-10, 1e-10));
  EXPECT_EQ(cache.k[0].sizes(), (std::vector<int64_t>{2, 2, 7, 4}));
  cache.reset();
  EXPECT_EQ(cache.length(), 0);
}

TEST(Attention, GradientsMatchFiniteDifferences) {
  torch::manual_seed(3);
  for (bool qk_norm : {false, true}) {
    Attention attn(AttentionOptions(8, 4).n_kv_heads(2).qkv_bias(true).qk_norm(qk_norm));
    attn->to(torch::kDouble);
    RotaryEmbedding rope(RopeOptions(2).scaling("llama3").factor(2).original_max_seq_len(4));
    auto cs = rope.cos_sin(0, 4, torch::kDouble, torch::kCPU);
    auto x = torch::randn({2, 4, 8}, torch::kDouble).requires_grad_();
    auto w = torch::randn({2, 4, 8}, torch::kDouble);
    auto loss = [&] { return testing::weighted_sum(attn(x, cs.first, cs.second), w); };
    std::vector<torch::Tensor> inputs = {x, attn->q_proj->weight, attn->k_proj->weight,
                                         attn->v_proj->bias, attn->o_proj->weight};
    if (qk_norm) inputs.push_back(attn->k_norm->weight);
    EXPECT_LE(testing::gradient_error(loss, inputs), 1.0) << "qk_norm=" << qk_norm;
  }
}

TEST(Attention, GradientsWithHistoryMatchFiniteDifferences) {
  // The explicit-mask path (a chunk after cached positions) is differentiable too.
  torch::manual_seed(4);
  auto q = torch::randn({1, 4, 3, 4}, torch::kDouble).requires_grad_();
  auto k = torch::randn({1, 2, 5, 4}, torch::kDouble).requires_grad_();
  auto v = torch::randn({1, 2, 5, 4}, torch::kDouble).requires_grad_();
  auto w = torch::randn({1, 4, 3, 4}, torch::kDouble);
  auto loss = [&] { return testing::weighted_sum(causal_attention(q, k, v), w); };
  EXPECT_LE(testing::gradient_error(loss, {q, k, v}), 1.0);
}

}  // namespace
}  // namespace reef
