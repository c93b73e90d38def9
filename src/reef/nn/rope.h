// Rotary position embeddings (RoPE) in Hugging Face's "rotate_half" layout: a head vector's first
// and second halves form the (real, imaginary) pairs. Supports plain RoPE, linear scaling
// (position interpolation) and Llama 3.1's frequency-dependent "llama3" scaling.
//
// Nothing here is a registered buffer: cos/sin tables are recomputed for the positions a forward
// pass needs, so a checkpoint (= named_parameters()) never carries them.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>

namespace reef {

struct RopeOptions {
  RopeOptions(int64_t head_dim) : head_dim_(head_dim) {}  // NOLINT
  TORCH_ARG(int64_t, head_dim);
  TORCH_ARG(double, theta) = 10000.0;
  TORCH_ARG(std::string, scaling) = "none";         // none, linear or llama3
  TORCH_ARG(double, factor) = 1.0;                  // linear, llama3
  TORCH_ARG(double, low_freq_factor) = 1.0;         // llama3
  TORCH_ARG(double, high_freq_factor) = 4.0;        // llama3
  TORCH_ARG(int64_t, original_max_seq_len) = 8192;  // llama3
};

// Inverse frequencies [D/2] in float32, computed exactly as transformers' ROPE_INIT_FUNCTIONS do
// (same dtype, same op order) so tables match HF bit for bit. Throws reef::Error(kUsage) for an
// unknown scaling or an odd head_dim.
torch::Tensor rope_inv_freq(const RopeOptions& options);

class RotaryEmbedding {
 public:
  explicit RotaryEmbedding(const RopeOptions& options);

  // cos, sin [T, D] for positions start .. start+T-1, in `dtype` on `device`. The angles are
  // formed in float32 (float64 when dtype is float64) and cast afterwards, as HF does.
  std::pair<torch::Tensor, torch::Tensor> cos_sin(int64_t start, int64_t length,
                                                  torch::ScalarType dtype,
                                                  torch::Device device) const;
  // cos, sin [B, 1, T, D] for per-row positions [B, T] (int64): rows of a continuous batch sit
  // at different positions. Same values as cos_sin() for the same positions.
  std::pair<torch::Tensor, torch::Tensor> cos_sin_at(const torch::Tensor& positions,
                                                     torch::ScalarType dtype) const;
  const torch::Tensor& inv_freq() const { return inv_freq_; }  // [D/2] float32, CPU
  const RopeOptions& options() const { return options_; }

 private:
  RopeOptions options_;
  torch::Tensor inv_freq_;
};

// [..., D] -> [..., D]: (-x2, x1) where x1, x2 are the two halves of the last dimension.
torch::Tensor rotate_half(const torch::Tensor& x);

// x [B, H, T, D], cos/sin [T, D] or [B, 1, T, D] -> x * cos + rotate_half(x) * sin.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin);

}  // namespace reef
