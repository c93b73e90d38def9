// CausalLM: HF parameter names per architecture, no buffers, parameter and FLOP accounting,
// config resolution, initialisation statistics, and KV-cache decoding equal to recomputation.
#include "reef/models/causal_lm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "reef/base/error.h"

namespace reef {
namespace {

ModelConfig tiny(const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.n_layers = 1;
  c.n_heads = 4;
  c.n_kv_heads = arch == "gpt2" ? 0 : 2;
  c.max_seq_len = 32;
  c.activation = "auto";
  return c;
}

std::vector<std::string> sorted_names(const CausalLM& m) {
  std::vector<std::string> names;
  for (const auto& p : m->named_parameters()) names.push_back(p.key());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

const std::vector<std::string> kLlamaLayer0 = {
    "model.layers.0.self_attn.q_proj.weight",        "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.v_proj.weight",        "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.mlp.gate_proj.weight",           "model.layers.0.mlp.up_proj.weight",
    "model.layers.0.mlp.down_proj.weight",           "model.layers.0.input_layernorm.weight",
    "model.layers.0.post_attention_layernorm.weight"};

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return sorted(base);
}

TEST(CausalLMNames, Llama) {
  CausalLM m(tiny("llama"));
  EXPECT_EQ(sorted_names(m), with(kLlamaLayer0, {"model.embed_tokens.weight", "model.norm.weight",
                                                 "lm_head.weight"}));
  EXPECT_TRUE(m->named_buffers().is_empty());
  auto params = m->named_parameters();
  EXPECT_EQ(params["model.layers.0.self_attn.k_proj.weight"].sizes(),
            (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(params["model.layers.0.mlp.gate_proj.weight"].sizes(), (std::vector<int64_t>{24, 16}));
  EXPECT_EQ(params["lm_head.weight"].sizes(), (std::vector<int64_t>{50, 16}));
}

TEST(CausalLMNames, LlamaWithBiasesTied) {
  auto c = tiny("llama");
  c.attention_bias = true;
  c.mlp_bias = true;
  c.tie_embeddings = true;
  CausalLM m(c);
  EXPECT_EQ(sorted_names(m),
            with(kLlamaLayer0,
                 {"model.embed_tokens.weight", "model.norm.weight",
                  "model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias",
                  "model.layers.0.self_attn.v_proj.bias", "model.layers.0.self_attn.o_proj.bias",
                  "model.layers.0.mlp.gate_proj.bias", "model.layers.0.mlp.up_proj.bias",
                  "model.layers.0.mlp.down_proj.bias"}));
}

TEST(CausalLMNames, Mistral) {
  CausalLM m(tiny("mistral"));
  EXPECT_EQ(sorted_names(m), with(kLlamaLayer0, {"model.embed_tokens.weight", "model.norm.weight",
                                                 "lm_head.weight"}));
}

TEST(CausalLMNames, Qwen2BiasOnQkvOnly) {
  auto c = tiny("qwen2");
  c.tie_embeddings = true;
  CausalLM m(c);
  EXPECT_EQ(sorted_names(m), with(kLlamaLayer0, {"model.embed_tokens.weight", "model.norm.weight",
                                                 "model.layers.0.self_attn.q_proj.bias",
                                                 "model.layers.0.self_attn.k_proj.bias",
                                                 "model.layers.0.self_attn.v_proj.bias"}));
}

TEST(CausalLMNames, Qwen3QkNorms) {
  auto c = tiny("qwen3");
  c.head_dim = 8;  // explicit and != hidden/heads, as Qwen3 allows
  CausalLM m(c);
  EXPECT_EQ(sorted_names(m),
            with(kLlamaLayer0, {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                                "model.layers.0.self_attn.q_norm.weight",
                                "model.layers.0.self_attn.k_norm.weight"}));
  auto params = m->named_parameters();
  EXPECT_EQ(params["model.layers.0.self_attn.q_proj.weight"].sizes(),
            (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(params["model.layers.0.self_attn.o_proj.weight"].sizes(),
            (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(params["model.layers.0.self_attn.q_norm.weight"].sizes(), (std::vector<int64_t>{8}));
}

TEST(CausalLMNames, Gpt2) {
  auto c = tiny("gpt2");
  c.tie_embeddings = true;
  CausalLM m(c);
  EXPECT_EQ(sorted_names(m),
            sorted({"transformer.wte.weight", "transformer.wpe.weight",
                    "transformer.h.0.ln_1.weight", "transformer.h.0.ln_1.bias",
                    "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
                    "transformer.h.0.attn.c_proj.weight", "transformer.h.0.attn.c_proj.bias",
                    "transformer.h.0.ln_2.weight", "transformer.h.0.ln_2.bias",
                    "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc.bias",
                    "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.mlp.c_proj.bias",
                    "transformer.ln_f.weight", "transformer.ln_f.bias"}));
  EXPECT_TRUE(m->named_buffers().is_empty());
  auto params = m->named_parameters();
  // Conv1D weights are [in, out], as HF stores them.
  EXPECT_EQ(params["transformer.h.0.attn.c_attn.weight"].sizes(), (std::vector<int64_t>{16, 48}));
  EXPECT_EQ(params["transformer.h.0.mlp.c_fc.weight"].sizes(), (std::vector<int64_t>{16, 24}));
  EXPECT_EQ(params["transformer.wpe.weight"].sizes(), (std::vector<int64_t>{32, 16}));
}

TEST(CausalLMNames, MixtralExpertsInHubLayout) {
  auto c = tiny("mixtral");
  c.n_experts = 3;
  CausalLM m(c);
  std::vector<std::string> layer = {"model.layers.0.self_attn.q_proj.weight",
                                    "model.layers.0.self_attn.k_proj.weight",
                                    "model.layers.0.self_attn.v_proj.weight",
                                    "model.layers.0.self_attn.o_proj.weight",
                                    "model.layers.0.input_layernorm.weight",
                                    "model.layers.0.post_attention_layernorm.weight",
                                    "model.layers.0.block_sparse_moe.gate.weight"};
  for (int e = 0; e < 3; ++e)
    for (const char* w : {"w1", "w2", "w3"})
      layer.push_back("model.layers.0.block_sparse_moe.experts." + std::to_string(e) + "." + w +
                      ".weight");
  EXPECT_EQ(sorted_names(m),
            with(layer, {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}));
  auto p = m->named_parameters();
  EXPECT_EQ(p["model.layers.0.block_sparse_moe.gate.weight"].sizes(),
            (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(p["model.layers.0.block_sparse_moe.experts.2.w1.weight"].sizes(),
            (std::vector<int64_t>{24, 16}));
  EXPECT_EQ(p["model.layers.0.block_sparse_moe.experts.2.w2.weight"].sizes(),
            (std::vector<int64_t>{16, 24}));
}

TEST(CausalLMNames, GemmaIsTiedWithZeroInitNorms) {
  auto c = tiny("gemma");
  c.tie_embeddings = false;  // gemma always ties
  CausalLM m(c);
  EXPECT_TRUE(m->config().tie_embeddings);
  EXPECT_EQ(m->config().activation, "gelu_pytorch_tanh");
  EXPECT_EQ(sorted_names(m),
            with(kLlamaLayer0, {"model.embed_tokens.weight", "model.norm.weight"}));
  auto p = m->named_parameters();
  EXPECT_TRUE(torch::equal(p["model.norm.weight"], torch::zeros({16})));
  EXPECT_TRUE(torch::equal(p["model.layers.0.input_layernorm.weight"], torch::zeros({16})));
}

TEST(CausalLM, GemmaScalesEmbeddingsBySqrtHidden) {
  // With zero-init (1 + w) norms, one layer's output is x*sqrt(C) plus the block's residuals;
  // compare the embedding-scale path directly on a model with no layers' contribution.
  auto c = tiny("gemma");
  c.norm_eps = 1.0;  // large enough that the norm does not hide a missing scale
  CausalLM m(c);
  torch::NoGradGuard no_grad;
  for (auto& p : m->named_parameters())
    if (p.key().find("o_proj") != std::string::npos ||
        p.key().find("down_proj") != std::string::npos)
      p.value().zero_();
  auto ids = torch::tensor({{3, 7, 11}}, torch::kLong);
  auto x = m->body().tokens()->weight.index_select(0, ids[0]) * std::sqrt(16.0f);
  auto expect = x / torch::sqrt(x.pow(2).mean(-1, true) + c.norm_eps);  // final norm, w = 0
  EXPECT_LE((m->hidden_states(ids)[0] - expect).abs().max().item<double>(), 1e-5);
}

TEST(CausalLMNames, LayersAreNumbered) {
  auto c = tiny("llama");
  c.n_layers = 3;
  CausalLM m(c);
  auto params = m->named_parameters();
  EXPECT_TRUE(params.contains("model.layers.2.mlp.down_proj.weight"));
  EXPECT_FALSE(params.contains("model.layers.3.mlp.down_proj.weight"));
}

TEST(CausalLM, TiedHeadUsesTheEmbedding) {
  auto c = tiny("qwen3");
  c.tie_embeddings = true;
  CausalLM m(c);
  EXPECT_FALSE(m->named_parameters().contains("lm_head.weight"));
  EXPECT_TRUE(m->lm_head_weight().is_same(m->body().tokens()->weight));
  auto ids = torch::randint(0, 50, {2, 5}, torch::kLong);
  auto logits = m(ids);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 5, 50}));
  EXPECT_TRUE(torch::allclose(
      logits, torch::matmul(m->hidden_states(ids), m->body().tokens()->weight.t()), 1e-6, 1e-6));
}

TEST(CausalLM, EveryParameterGetsAGradient) {
  for (const char* arch : {"llama", "qwen3", "gpt2", "gemma", "mixtral"}) {
    auto c = tiny(arch);
    if (std::string(arch) == "mixtral") c.n_experts_per_tok = 8;  // every expert sees a token
    CausalLM m(c);
    auto ids = torch::randint(0, 50, {2, 6}, torch::kLong);
    auto logits = m(ids);
    torch::nn::functional::cross_entropy(logits.view({-1, 50}), ids.view({-1})).backward();
    for (const auto& p : m->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << arch << " " << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << arch << " " << p.key();
    }
  }
}

TEST(ResolveModelConfig, DerivedFields) {
  ModelConfig c;
  c.arch = "llama";
  c.hidden_size = 256;
  c.n_heads = 8;
  c.activation = "auto";
  auto r = resolve_model_config(c);
  EXPECT_EQ(r.n_kv_heads, 8);
  EXPECT_EQ(r.head_dim, 32);
  EXPECT_EQ(r.intermediate_size, 704);  // 8/3*256 = 682.7 -> next multiple of 64
  EXPECT_EQ(r.activation, "silu");
  c.hidden_size = 192;  // 8/3*192 = 512 exactly
  EXPECT_EQ(resolve_model_config(c).intermediate_size, 512);
  c.activation = "";
  EXPECT_EQ(resolve_model_config(c).activation, "silu");

  c.arch = "gpt2";
  c.activation = "auto";
  auto g = resolve_model_config(c);
  EXPECT_EQ(g.intermediate_size, 4 * 192);
  EXPECT_EQ(g.activation, "gelu_new");
  EXPECT_TRUE(g.attention_bias);

  c.arch = "qwen2";
  EXPECT_TRUE(resolve_model_config(c).attention_bias);
  c.arch = "qwen3";
  EXPECT_TRUE(resolve_model_config(c).qk_norm);
  c.arch = "mixtral";
  EXPECT_EQ(resolve_model_config(c).n_experts, 8);  // MixtralConfig's default
  c.arch = "gemma";
  EXPECT_TRUE(resolve_model_config(c).tie_embeddings);
  EXPECT_EQ(resolve_model_config(c).activation, "gelu_pytorch_tanh");
}

void expect_usage_error(const ModelConfig& c, const std::string& needle) {
  try {
    resolve_model_config(c);
    ADD_FAILURE() << "no error for " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ResolveModelConfig, Errors) {
  auto c = tiny("bert");
  expect_usage_error(c, "llama, mistral, mixtral, qwen2, qwen3, gemma, gpt2");
  c = tiny("gemma2");
  expect_usage_error(c,
                     "model.arch: expected one of llama, mistral, mixtral, qwen2, qwen3, "
                     "gemma, gpt2, got 'gemma2'");
  c = tiny("llama");
  c.n_experts = 4;
  expect_usage_error(c,
                     "model.n_experts: expected 0 for the dense arch llama (only mixtral has "
                     "experts), got 4");
  c = tiny("mixtral");
  c.n_experts = 4;
  c.n_experts_per_tok = 5;
  expect_usage_error(c, "n_experts_per_tok");
  c = tiny("mixtral");
  c.attention_bias = true;
  expect_usage_error(c, "attention_bias");
  c = tiny("gemma");
  c.activation = "gelu";
  expect_usage_error(c, "gelu_pytorch_tanh");
  c = tiny("llama");
  c.n_kv_heads = 3;
  expect_usage_error(c, "n_kv_heads");
  c = tiny("gpt2");
  c.n_kv_heads = 2;
  expect_usage_error(c, "n_kv_heads");
  c = tiny("mistral");
  c.attention_bias = true;
  expect_usage_error(c, "attention_bias");
  c = tiny("llama");
  c.rope_scaling = "yarn";
  expect_usage_error(c, "yarn");
  c = tiny("llama");
  c.activation = "tanh";
  expect_usage_error(c, "tanh");
  c = tiny("llama");
  c.vocab_size = 0;
  EXPECT_NO_THROW(resolve_model_config(c));  // not known yet is fine for resolution ...
  EXPECT_THROW(CausalLM{c}, Error);          // ... but not for building
}

TEST(CountParameters, MatchesTheBuiltModel) {
  for (const char* arch : {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gpt2"}) {
    for (bool tie : {false, true}) {
      auto c = tiny(arch);
      c.n_layers = 2;
      c.tie_embeddings = tie;
      if (std::string(arch) == "llama") c.attention_bias = c.mlp_bias = true;
      CausalLM m(c);
      int64_t n = 0;
      for (const auto& p : m->parameters()) n += p.numel();
      EXPECT_EQ(count_parameters(c), n) << arch << " tie=" << tie;
      const int64_t embeddings = 50 * 16 + (std::string(arch) == "gpt2" ? 32 * 16 : 0);
      EXPECT_EQ(count_parameters(c, false), n - embeddings) << arch;
    }
  }
}

TEST(TrainFlops, PalmFormula) {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 1000;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;  // D = 16, kv width 32
  const double per_layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128;
  const double expect = 6 * (2 * per_layer + 1000 * 64) + 12.0 * 2 * 4 * 16 * 128;
  EXPECT_DOUBLE_EQ(train_flops_per_token(c, 128), expect);
  c.tie_embeddings = true;  // the LM head matmul is paid either way
  EXPECT_DOUBLE_EQ(train_flops_per_token(c, 128), expect);

  c.arch = "gpt2";
  c.n_kv_heads = 0;
  const double gpt2_layer = 64 * 3 * 64 + 64 * 64 + 2 * 64 * 128;
  EXPECT_DOUBLE_EQ(train_flops_per_token(c, 64),
                   6 * (2 * gpt2_layer + 1000 * 64) + 12.0 * 2 * 64 * 64);

  // Mixtral: the router and the n_experts_per_tok active experts, not all of them.
  c.arch = "mixtral";
  c.n_kv_heads = 2;
  c.n_experts = 8;
  c.n_experts_per_tok = 2;
  const double moe_layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 8 * 64 + 2 * 3 * 64 * 128;
  EXPECT_DOUBLE_EQ(train_flops_per_token(c, 128),
                   6 * (2 * moe_layer + 1000 * 64) + 12.0 * 2 * 4 * 16 * 128);
  c.n_experts = 4;  // more experts held, the same work per token (but for the router)
  EXPECT_DOUBLE_EQ(train_flops_per_token(c, 128),
                   6 * (2 * (moe_layer - 4 * 64) + 1000 * 64) + 12.0 * 2 * 4 * 16 * 128);
}

double std_of(const torch::Tensor& t) { return t.std().item<double>(); }

TEST(CausalLMInit, Statistics) {
  torch::manual_seed(7);
  ModelConfig c;
  c.arch = "qwen2";
  c.vocab_size = 1000;
  c.hidden_size = 256;
  c.n_layers = 8;
  c.n_heads = 4;
  c.init_std = 0.02;
  CausalLM m(c);
  auto p = m->named_parameters();
  const double residual = 0.02 / std::sqrt(16.0);
  EXPECT_NEAR(std_of(p["model.embed_tokens.weight"]), 0.02, 0.0005);
  EXPECT_NEAR(std_of(p["lm_head.weight"]), 0.02, 0.0005);
  EXPECT_NEAR(std_of(p["model.layers.3.mlp.gate_proj.weight"]), 0.02, 0.0005);
  EXPECT_NEAR(std_of(p["model.layers.3.self_attn.q_proj.weight"]), 0.02, 0.001);
  EXPECT_NEAR(std_of(p["model.layers.3.self_attn.o_proj.weight"]), residual, residual * 0.05);
  EXPECT_NEAR(std_of(p["model.layers.3.mlp.down_proj.weight"]), residual, residual * 0.05);
  EXPECT_NEAR(p["model.embed_tokens.weight"].mean().item<double>(), 0.0, 0.001);
  EXPECT_TRUE(torch::equal(p["model.layers.3.input_layernorm.weight"], torch::ones({256})));
  EXPECT_TRUE(torch::equal(p["model.norm.weight"], torch::ones({256})));
  EXPECT_TRUE(torch::equal(p["model.layers.3.self_attn.q_proj.bias"], torch::zeros({256})));

  auto g = tiny("gpt2");
  g.hidden_size = 256;
  g.n_layers = 8;
  g.n_heads = 4;
  g.intermediate_size = 0;  // 4 * hidden
  g.max_seq_len = 256;
  g.init_std = 0.05;
  CausalLM gm(g);
  auto q = gm->named_parameters();
  EXPECT_NEAR(std_of(q["transformer.wte.weight"]), 0.05, 0.002);
  EXPECT_NEAR(std_of(q["transformer.wpe.weight"]), 0.05, 0.002);
  EXPECT_NEAR(std_of(q["transformer.h.2.attn.c_attn.weight"]), 0.05, 0.002);
  EXPECT_NEAR(std_of(q["transformer.h.2.attn.c_proj.weight"]), 0.05 / 4, 0.05 / 4 * 0.05);
  EXPECT_NEAR(std_of(q["transformer.h.2.mlp.c_proj.weight"]), 0.05 / 4, 0.05 / 4 * 0.05);
  EXPECT_TRUE(torch::equal(q["transformer.h.2.ln_1.bias"], torch::zeros({256})));
  EXPECT_TRUE(torch::equal(q["transformer.ln_f.weight"], torch::ones({256})));
  EXPECT_TRUE(torch::equal(q["transformer.h.2.mlp.c_fc.bias"], torch::zeros({1024})));
}

TEST(CausalLMInit, SeededAndResettable) {
  auto c = tiny("llama");
  torch::manual_seed(11);
  CausalLM a(c);
  torch::manual_seed(11);
  CausalLM b(c);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  auto before = pa["model.layers.0.mlp.up_proj.weight"].clone();
  a->reset_parameters();
  EXPECT_FALSE(torch::equal(before, pa["model.layers.0.mlp.up_proj.weight"]));
}

// Logits from prefill + single tokens, and from uneven chunks, equal one full forward pass.
void expect_cache_matches(ModelConfig c) {
  torch::manual_seed(3);
  c.n_layers = 2;
  CausalLM m(c);
  m->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, c.vocab_size, {2, 11}, torch::kLong);
  auto full = m(ids);

  KVCache cache;
  std::vector<torch::Tensor> steps = {m(ids.slice(1, 0, 5), &cache)};
  EXPECT_EQ(cache.length(), 5);
  for (int64_t t = 5; t < 11; ++t) steps.push_back(m(ids.slice(1, t, t + 1), &cache));
  EXPECT_EQ(cache.length(), 11);
  ASSERT_EQ(cache.k.size(), 2u);
  EXPECT_LE((torch::cat(steps, 1) - full).abs().max().item<double>(), 1e-5) << c.arch;

  cache.reset();
  std::vector<torch::Tensor> chunks;
  int64_t pos = 0;
  for (int64_t len : {4, 3, 1, 3}) {
    chunks.push_back(m(ids.slice(1, pos, pos + len), &cache));
    pos += len;
  }
  EXPECT_LE((torch::cat(chunks, 1) - full).abs().max().item<double>(), 1e-5) << c.arch;
}

TEST(CausalLMCache, IncrementalEqualsFull) {
  expect_cache_matches(tiny("llama"));
  auto q = tiny("qwen3");
  q.head_dim = 8;
  expect_cache_matches(q);
  auto g = tiny("gpt2");
  g.tie_embeddings = true;
  expect_cache_matches(g);
  auto l3 = tiny("llama");
  l3.rope_scaling = "llama3";
  l3.rope_factor = 8;
  l3.rope_original_max_seq_len = 16;
  expect_cache_matches(l3);
  auto mqa = tiny("mistral");
  mqa.n_kv_heads = 1;
  expect_cache_matches(mqa);
  expect_cache_matches(tiny("qwen2"));
  expect_cache_matches(tiny("mixtral"));
  auto gemma = tiny("gemma");
  gemma.head_dim = 8;
  expect_cache_matches(gemma);
}

TEST(CausalLMCache, Gpt2RejectsPositionsPastTheTable) {
  auto c = tiny("gpt2");
  CausalLM m(c);
  torch::NoGradGuard no_grad;
  KVCache cache;
  m(torch::zeros({1, 30}, torch::kLong), &cache);
  EXPECT_THROW(m(torch::zeros({1, 3}, torch::kLong), &cache), Error);
}

}  // namespace
}  // namespace reef
