// Applying a torch::nn::Linear the way PyTorch's Python nn.Linear does. libtorch's
// torch::nn::Linear::forward (functional::linear) multiplies and then adds the bias as a second
// op for inputs of more than two dimensions, rounding twice in bf16/fp16; Python's F.linear is
// at::linear, one fused addmm over the flattened input. Reef's layers call linear() so that
// half-precision models compute exactly what transformers computes (and save an op).
#pragma once

#include <torch/torch.h>

namespace reef {

// x [..., in] -> [..., out]
inline torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return torch::linear(x, layer->weight, layer->bias);
}

}  // namespace reef
