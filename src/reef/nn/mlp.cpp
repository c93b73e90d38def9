// Gated MLP, Conv1D and activations (see mlp.h).
#include "reef/nn/mlp.h"

#include "reef/base/error.h"
#include "reef/nn/init.h"

namespace reef {

bool is_supported_activation(const std::string& name) {
  return name == "silu" || name == "swish" || name == "gelu" || name == "gelu_new" ||
         name == "gelu_pytorch_tanh" || name == "relu";
}

std::string supported_activations() { return "silu, gelu, gelu_new, gelu_pytorch_tanh, relu"; }

torch::Tensor activation(const torch::Tensor& x, const std::string& name) {
  if (name == "silu" || name == "swish") return torch::silu(x);
  if (name == "gelu") return torch::gelu(x);
  // HF's gelu_new is 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))): torch's tanh-approximate GELU.
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  usage_error("unsupported activation '{}': expected one of {}", name, supported_activations());
}

GatedMLPImpl::GatedMLPImpl(const GatedMLPOptions& o) : options_(o) {
  if (!is_supported_activation(o.activation())) {
    usage_error("unsupported activation '{}': expected one of {}", o.activation(),
                supported_activations());
  }
  auto lin = [&](int64_t in, int64_t out) { return Linear(in, out, o.bias()); };
  gate_proj = register_module("gate_proj", lin(o.hidden_size(), o.intermediate_size()));
  up_proj = register_module("up_proj", lin(o.hidden_size(), o.intermediate_size()));
  down_proj = register_module("down_proj", lin(o.intermediate_size(), o.hidden_size()));
}

torch::Tensor GatedMLPImpl::forward(const torch::Tensor& x_in) {
  const auto x = hooked(x_in);
  return down_proj(activation(gate_proj(x), options_.activation()) * up_proj(x));
}

Conv1DImpl::Conv1DImpl(int64_t in_features, int64_t out_features, bool with_bias) {
  weight = register_parameter("weight", torch::empty({in_features, out_features}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out_features}));
  torch::NoGradGuard no_grad;
  if (!skip_init())
    weight.normal_(0.0, 0.02);  // HF Conv1D's own default; models re-initialise with init_std
}

torch::Tensor Conv1DImpl::forward(const torch::Tensor& x) {
  // addmm on the flattened input, as HF does, so imported GPT-2 weights give identical sums.
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(1);
  auto flat = x.reshape({-1, x.size(-1)});
  auto y = bias.defined() ? torch::addmm(bias, flat, weight) : torch::mm(flat, weight);
  return y.view(sizes);
}

}  // namespace reef
