// RMSNorm and LayerNorm (see norms.h). RMSNorm follows HF's LlamaRMSNorm op for op so that
// imported checkpoints reproduce reference logits.
#include "reef/nn/norms.h"

namespace reef {

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto in_dtype = x.scalar_type();
  // Reduced-precision inputs are normalised in float32; float64 keeps its precision.
  auto h = in_dtype == torch::kDouble ? x : x.to(torch::kFloat);
  auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * torch::rsqrt(variance + eps);
  return weight * h.to(in_dtype);
}

torch::Tensor rms_norm_unit_offset(const torch::Tensor& x, const torch::Tensor& weight,
                                   double eps) {
  auto in_dtype = x.scalar_type();
  const auto compute = in_dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto h = x.to(compute);
  h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (h * (1.0 + weight.to(compute))).to(in_dtype);
}

RMSNormImpl::RMSNormImpl(const RMSNormOptions& options) : options_(options) {
  weight = register_parameter("weight", options_.unit_offset() ? torch::zeros({options_.dim()})
                                                               : torch::ones({options_.dim()}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  return options_.unit_offset() ? rms_norm_unit_offset(x, weight, options_.eps())
                                : rms_norm(x, weight, options_.eps());
}

void RMSNormImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  weight.fill_(options_.unit_offset() ? 0.0 : 1.0);
}

LayerNormImpl::LayerNormImpl(const LayerNormOptions& options) : options_(options) {
  weight = register_parameter("weight", torch::ones({options_.dim()}));
  if (options_.bias()) bias = register_parameter("bias", torch::zeros({options_.dim()}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return at::layer_norm(x, {options_.dim()}, weight, bias, options_.eps());
}

void LayerNormImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  weight.fill_(1.0);
  if (bias.defined()) bias.zero_();
}

}  // namespace reef
