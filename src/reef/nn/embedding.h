// The modules at the model's two ends, which parallel/ reshapes from outside.
//
// Embedding is a plain lookup table whose forward is virtual, so a parallel layout can put its own
// lookup in the same place (tensor parallelism's vocabulary-parallel one, parallel/) and the
// model body calling it never knows. LogitsHead is the LM head's matmul as a module without weights
// of its own: the weight (lm_head.weight, or the tied token embedding) is passed per call, so the
// parameter names stay Hugging Face's whatever the tie.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>

#include "reef/nn/hooks.h"

namespace reef {

class EmbeddingImpl : public torch::nn::Module {
 public:
  // weight [n, dim] ~ normal(0, 1) as torch.nn.Embedding, or uninitialised under SkipInitGuard.
  EmbeddingImpl(int64_t n, int64_t dim);
  virtual ~EmbeddingImpl() = default;
  // ids [...] int64 -> [..., dim]
  virtual torch::Tensor forward(const torch::Tensor& ids);

  torch::Tensor weight;  // [n, dim]

 protected:
  // Adopts `weight` (another lookup's, the same tensor) instead of allocating one.
  explicit EmbeddingImpl(torch::Tensor weight);
};
TORCH_MODULE(Embedding);

class LogitsHeadImpl : public torch::nn::Module, public InputHook {
 public:
  // h [..., C], weight [V, C] -> logits [..., V]
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& weight);
};
TORCH_MODULE(LogitsHead);

}  // namespace reef
