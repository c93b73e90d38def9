// Tests for infer/generate.h: sampling rules, and that greedy decoding with the KV cache gives
// the same tokens as recomputing the full sequence every step.
#include "reef/infer/generate.h"

#include <gtest/gtest.h>

namespace reef {
namespace {

TEST(Sampling, GreedyTopKTopP) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(1);
  auto logits = torch::tensor({1.0f, 5.0f, 3.0f, 4.9f});
  SamplingParams p;
  p.temperature = 0;
  EXPECT_EQ(sample_next(logits, p, gen), 1);
  p.temperature = 1.0;
  p.top_k = 2;
  for (int i = 0; i < 200; ++i) {
    auto id = sample_next(logits, p, gen);
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
  p.top_k = 0;
  p.top_p = 0.3;  // the top token alone has ~0.5 of the mass
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sample_next(logits, p, gen), 1);
}

TEST(Sampling, SeededSamplingIsReproducibleAndTemperatureMatters) {
  auto logits = torch::randn({50});
  SamplingParams p;
  p.temperature = 1.0;
  auto g1 = torch::make_generator<at::CPUGeneratorImpl>(5),
       g2 = torch::make_generator<at::CPUGeneratorImpl>(5);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_next(logits, p, g1), sample_next(logits, p, g2));
  // Very low temperature concentrates on the argmax.
  p.temperature = 1e-3;
  int64_t best = logits.argmax().item<int64_t>();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_next(logits, p, g1), best);
}

ModelConfig tiny(const std::string& arch) {
  ModelConfig m;
  m.arch = arch;
  m.vocab_size = 258;
  m.hidden_size = 64;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = arch == "gpt2" ? 0 : 2;
  m.max_seq_len = 128;
  m.init_std = 0.2;  // peaky logits so that greedy paths are not decided by rounding
  return m;
}

TEST(Generate, GreedyWithCacheEqualsFullRecomputation) {
  for (const char* arch : {"llama", "gpt2"}) {
    torch::manual_seed(11);
    CausalLM model(tiny(arch));
    ByteTokenizer tok;
    SamplingParams p;
    p.temperature = 0;
    p.max_new_tokens = 40;
    p.stop_at_eos = false;
    auto prompt = tok.encode("Once upon a time");
    p.use_cache = true;
    auto a = generate(model, tok, prompt, p);
    p.use_cache = false;
    auto b = generate(model, tok, prompt, p);
    EXPECT_EQ(a.tokens.size(), 40u) << arch;
    EXPECT_EQ(a.tokens, b.tokens) << arch;
    // And sampled generation with a seed is identical with and without the cache too.
    p.temperature = 0.9;
    p.seed = 4;
    p.use_cache = true;
    auto c = generate(model, tok, prompt, p);
    p.use_cache = false;
    auto d = generate(model, tok, prompt, p);
    EXPECT_EQ(c.tokens, d.tokens) << arch;
  }
}

TEST(Generate, StopsAtStopStringAndContextEnd) {
  torch::manual_seed(2);
  CausalLM model(tiny("llama"));
  ByteTokenizer tok;
  SamplingParams p;
  p.temperature = 0;
  p.max_new_tokens = 500;
  p.stop_at_eos = false;
  auto full = generate(model, tok, tok.encode("abc"), p);
  EXPECT_EQ(full.finish_reason, "length");
  EXPECT_EQ(full.tokens.size(), 128u - 3u);  // the context is the limit
  ASSERT_GE(full.text.size(), 6u);
  p.stop = {full.text.substr(3, 2)};
  auto cut = generate(model, tok, tok.encode("abc"), p);
  EXPECT_EQ(cut.finish_reason, "stop");
  EXPECT_EQ(cut.text.find(p.stop[0]), std::string::npos);
  EXPECT_EQ(full.text.compare(0, cut.text.size(), cut.text), 0);
}

}  // namespace
}  // namespace reef
