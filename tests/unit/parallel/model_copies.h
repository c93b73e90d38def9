// Test helpers for the parallel unit tests: a small config, a model with every parameter random,
// copies of it for each rank, and a tensor comparison that names what differs and by how much.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "reef/models/causal_lm.h"

namespace reef::testing {

// A GQA llama small enough for threads-as-ranks tests, splittable over 2 tensor-parallel ranks
// (4 heads, 2 KV heads, vocab 40).
inline ModelConfig tiny_llama_config() {
  ModelConfig c;
  c.arch = "llama";
  c.hidden_size = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.intermediate_size = 48;
  c.vocab_size = 40;
  c.max_seq_len = 16;
  return c;
}

// The model for seed 7 with every parameter (biases and norms too) drawn at random, so no bias
// or norm term hides behind a zero or a one.
inline CausalLM random_model(const ModelConfig& cfg) {
  torch::manual_seed(7);
  CausalLM m(cfg);
  torch::NoGradGuard ng;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.3);
  return m;
}

// A model of `cfg` holding `from`'s weights (each rank slices or shards its own copy).
inline CausalLM copy_model(const ModelConfig& cfg, CausalLM& from) {
  CausalLM m(cfg);
  torch::NoGradGuard ng;
  auto src = from->named_parameters();
  for (auto& item : m->named_parameters()) item.value().copy_(src[item.key()]);
  return m;
}

// Same shape and torch::allclose(got, want, 1e-4, atol).
inline void expect_close(const torch::Tensor& got, const torch::Tensor& want,
                         const std::string& what, double atol) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_TRUE(torch::allclose(got, want, 1e-4, atol))
      << what << ": max diff " << (got - want).abs().max().item<double>();
}

}  // namespace reef::testing
