// Feed-forward pieces: the SwiGLU-style gated MLP of the llama family (gate_proj, up_proj,
// down_proj), GPT-2's Conv1D projection (a linear layer whose weight is stored [in, out], as in
// HF GPT-2 checkpoints) and the activation functions configs name.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

#include "reef/nn/hooks.h"
#include "reef/nn/linear.h"

namespace reef {

// Applies the named activation: silu, gelu (erf), gelu_new / gelu_pytorch_tanh (tanh
// approximation), relu. Throws reef::Error(kUsage) for other names.
torch::Tensor activation(const torch::Tensor& x, const std::string& name);
// True when activation() knows `name`.
bool is_supported_activation(const std::string& name);
// "silu, gelu, gelu_new, gelu_pytorch_tanh, relu": for error messages.
std::string supported_activations();

struct GatedMLPOptions {
  GatedMLPOptions(int64_t hidden_size, int64_t intermediate_size)
      : hidden_size_(hidden_size), intermediate_size_(intermediate_size) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, intermediate_size);
  TORCH_ARG(std::string, activation) = "silu";
  TORCH_ARG(bool, bias) = false;
};

// down_proj(act(gate_proj(x)) * up_proj(x)).
class GatedMLPImpl : public torch::nn::Module, public InputHook {
 public:
  explicit GatedMLPImpl(const GatedMLPOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, C] -> [B, T, C]
  const GatedMLPOptions& options() const { return options_; }

  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  // The input hook (nn/hooks.h) applies to x before gate_proj/up_proj; parallel/ sets it
  // when it shards the intermediate dimension (tensor parallelism).

 private:
  GatedMLPOptions options_;
};
TORCH_MODULE(GatedMLP);

// y = x @ weight + bias with weight [in, out]: HF's transformers.pytorch_utils.Conv1D.
class Conv1DImpl : public torch::nn::Module {
 public:
  Conv1DImpl(int64_t in_features, int64_t out_features, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);  // [..., in] -> [..., out]

  torch::Tensor weight;  // [in, out]
  torch::Tensor bias;    // [out], undefined without bias
};
TORCH_MODULE(Conv1D);

}  // namespace reef
