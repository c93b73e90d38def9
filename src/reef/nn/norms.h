// Normalisation layers: RMSNorm (llama family, also Qwen3's per-head q/k norms), Gemma's
// RMSNorm with a (1 + weight) scale, and LayerNorm with bias (GPT-2). Parameter names are "weight"
// (and "bias"), as in Hugging Face checkpoints.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace reef {

// x [..., C] -> x / sqrt(mean(x^2) + eps) * weight. Computed in float32 for half/bfloat16 inputs
// and cast back before the weight is applied (as HF's LlamaRMSNorm); float64 stays float64.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// Gemma's variant (HF GemmaRMSNorm): x / sqrt(mean(x^2) + eps) * (1 + weight), all in float32
// (float64 stays float64) and cast back to x's dtype only at the end.
torch::Tensor rms_norm_unit_offset(const torch::Tensor& x, const torch::Tensor& weight, double eps);

struct RMSNormOptions {
  RMSNormOptions(int64_t dim) : dim_(dim) {}  // NOLINT: implicit like torch's options
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(double, eps) = 1e-5;
  // Gemma: scale by (1 + weight), weight initialised to 0 (rms_norm_unit_offset).
  TORCH_ARG(bool, unit_offset) = false;
};

class RMSNormImpl : public torch::nn::Module {
 public:
  explicit RMSNormImpl(const RMSNormOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // [..., C] -> [..., C]
  void reset_parameters();                        // weight = 1 (0 with unit_offset)
  const RMSNormOptions& options() const { return options_; }

  torch::Tensor weight;  // [C]

 private:
  RMSNormOptions options_;
};
TORCH_MODULE(RMSNorm);

struct LayerNormOptions {
  LayerNormOptions(int64_t dim) : dim_(dim) {}  // NOLINT
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(double, eps) = 1e-5;
  TORCH_ARG(bool, bias) = true;
};

// LayerNorm over the last dimension with an affine weight and (optionally) bias.
class LayerNormImpl : public torch::nn::Module {
 public:
  explicit LayerNormImpl(const LayerNormOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // [..., C] -> [..., C]
  void reset_parameters();                        // weight = 1, bias = 0
  const LayerNormOptions& options() const { return options_; }

  torch::Tensor weight;  // [C]
  torch::Tensor bias;    // [C], undefined without bias

 private:
  LayerNormOptions options_;
};
TORCH_MODULE(LayerNorm);

}  // namespace reef
