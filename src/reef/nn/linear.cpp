// Linear (see linear.h).
#include "reef/nn/linear.h"

#include <cmath>

#include "reef/base/error.h"
#include "reef/nn/init.h"

namespace reef {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias)
    : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}));
  if (!skip_init()) reset_parameters();
}

void LinearImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = in_features > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features)) : 0;
    bias.uniform_(-bound, bound);
  }
}

double LinearImpl::lora_scaling() const {
  const auto& o = lora_options_;
  return o.use_rslora ? o.alpha / std::sqrt(static_cast<double>(o.r)) : o.alpha / o.r;
}

void LinearImpl::enable_lora(const LoraOptions& options) {
  if (lora_A) throw Error("Linear.enable_lora: this layer already has a LoRA branch");
  if (options.r < 1) usage_error("LoRA rank r must be >= 1, got {}", options.r);
  if (options.dropout < 0 || options.dropout >= 1)
    usage_error("LoRA dropout must be in [0, 1), got {}", options.dropout);
  lora_options_ = options;
  // Made in float32 and moved to the base weight's device and dtype, as PEFT does. Under
  // SkipInitGuard (an adapter about to be loaded) A is left undrawn.
  auto a = std::make_shared<LinearImpl>(in_features, options.r, false);
  auto b = std::make_shared<LinearImpl>(options.r, out_features, false);
  if (options.init_weights) {
    torch::NoGradGuard no_grad;
    b->weight.zero_();
  }
  a->to(weight.device(), weight.scalar_type());
  b->to(weight.device(), weight.scalar_type());
  lora_A = register_module("lora_A", a);
  lora_B = register_module("lora_B", b);
}

torch::Tensor LinearImpl::forward_with_hooks(const torch::Tensor& x) {
  auto result =
      matmul_hook ? matmul_hook(torch::linear(x, weight)) : torch::linear(x, weight, bias);
  if (matmul_hook && bias.defined()) result = result + bias;
  if (!lora_A || !lora_enabled) return output_hook ? output_hook(x, result) : result;
  // PEFT's order: the base result, the input cast to the adapter's dtype, the branch scaled
  // after lora_B, added, and the sum cast back to the base result's dtype.
  const auto result_dtype = result.scalar_type();
  auto h = x.to(lora_A->weight.scalar_type());
  const double p = lora_options_.dropout;
  if (p > 0 && is_training()) h = torch::dropout(h, p, /*train=*/true);
  result = result + lora_B->forward(lora_A->forward(h)) * lora_scaling();
  result = result.to(result_dtype);
  return output_hook ? output_hook(x, result) : result;
}

void LinearImpl::merge_lora() {
  if (!lora_A) throw Error("Linear.merge_lora: this layer has no LoRA branch");
  {
    torch::NoGradGuard no_grad;
    auto a = lora_A->weight, b = lora_B->weight;
    // As PEFT: half-precision adapters on CPU are multiplied in float32 and the delta cast back
    // to the adapter's dtype, then to the base weight's.
    const auto lora_dtype = b.scalar_type();
    const bool upcast =
        b.device().is_cpu() && (lora_dtype == torch::kHalf || lora_dtype == torch::kBFloat16);
    if (upcast) {
      a = a.to(torch::kFloat);
      b = b.to(torch::kFloat);
    }
    auto delta = (torch::matmul(b, a) * lora_scaling()).to(lora_dtype);  // [out, in]
    weight.add_(delta.to(weight.scalar_type()));
  }
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A.reset();
  lora_B.reset();
}

}  // namespace reef
