// Test helpers for the parallel unit tests: a small model with every parameter random, copies of
// it for each rank, and a tensor comparison that names what differs and by how much.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "reef/models/causal_lm.h"

namespace reef::testing {

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
