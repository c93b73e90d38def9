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
//
// LoRA (Hu et al. 2021) as PEFT implements it: enable_lora() adds child modules lora_A [r, in] and
// lora_B [out, r] (bias-free Linears), so their parameters are named "<layer>.lora_A.weight" and
// "<layer>.lora_B.weight" -- PEFT's saved key names without its "base_model.model." prefix -- and
// forward becomes base(x) + lora_B(lora_A(dropout(x))) * scaling. merge_lora() folds the branch
// into weight and removes it, leaving a plain Linear again (for export).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace reef {

// PEFT's LoraConfig fields that shape one layer's branch.
struct LoraOptions {
  int64_t r = 8;
  double alpha = 8;          // lora_alpha
  double dropout = 0;        // lora_dropout, applied to the branch input in training mode only
  bool use_rslora = false;   // scaling alpha/sqrt(r) instead of alpha/r
  bool init_weights = true;  // PEFT's default: A kaiming-uniform(a=sqrt(5)), B zeros (a no-op
                             // branch); false: B drawn like A too (a non-zero branch, for tests)
};

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  // x [..., in] -> [..., out]
  torch::Tensor forward(const torch::Tensor& x) {
    if (!lora_A && !matmul_hook && !output_hook) return torch::linear(x, weight, bias);
    return forward_with_hooks(x);
  }
  void reset_parameters();

  // Adds the LoRA branch (created on weight's device and dtype). Throws if it already has one
  // or r < 1. Does not freeze weight/bias: see apply_lora (models/lora.h) for a whole model.
  void enable_lora(const LoraOptions& options);
  bool has_lora() const { return lora_A != nullptr; }
  const LoraOptions& lora_options() const { return lora_options_; }
  double lora_scaling() const;  // alpha / r, or alpha / sqrt(r) with rsLoRA
  // weight += (B @ A) * scaling (computed in float32 for half-precision adapters on CPU, as
  // peft does, then cast back), then removes lora_A/lora_B. Throws without a branch.
  void merge_lora();

  int64_t in_features, out_features;
  torch::Tensor weight;                        // [out, in]
  torch::Tensor bias;                          // [out], undefined without bias
  std::shared_ptr<LinearImpl> lora_A, lora_B;  // [r, in], [out, r]; null without LoRA
  bool lora_enabled = true;  // false: forward skips the branch (peft's disable_adapter)
  // A generic extension point: when set, forward computes hook(x @ weight^T) + bias, so the
  // bias is added after the hook (parallel/ uses it to all-reduce a row-parallel layer's partial
  // products before its bias, which must be added once). Null: the plain fused linear.
  std::function<torch::Tensor(const torch::Tensor&)> matmul_hook;
  // A second extension point: when set, forward returns output_hook(x, y) for the finished
  // output y (bias and LoRA branch included). models/multi_lora.h adds per-row adapters with it.
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> output_hook;

 private:
  torch::Tensor forward_with_hooks(const torch::Tensor& x);  // x [..., in] -> [..., out]
  LoraOptions lora_options_;
};
TORCH_MODULE(Linear);

}  // namespace reef
