// Linear: a torch::nn::Linear with two differences that matter for Hugging Face checkpoints.
// 1. forward is at::linear, as Python's nn.Linear: for a [B, T, C] input with a bias that is one
//    fused addmm over the flattened input, while libtorch's torch::nn::Linear multiplies and then
//    adds the bias as a second op, rounding twice in bf16/fp16. So half-precision models compute
//    exactly what transformers computes.
// 2. Construction can skip the random initialisation (SkipInitGuard, nn/init.h) when the weights
//    are about to be loaded: for a 1B model that initialisation was ~95% of the load time.
// Parameter names ("weight" [out, in], "bias" [out]) and the default initialisation (kaiming
// uniform with a = sqrt(5), bias U(-1/sqrt(in), 1/sqrt(in)), drawing the same random numbers) are
// torch's.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace reef {

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  // x [..., in] -> [..., out]
  torch::Tensor forward(const torch::Tensor& x) { return torch::linear(x, weight, bias); }
  void reset_parameters();

  int64_t in_features, out_features;
  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out], undefined without bias
};
TORCH_MODULE(Linear);

}  // namespace reef
