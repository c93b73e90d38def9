// RoPE tables and rotation (see rope.h). The frequency formulas mirror
// transformers/modeling_rope_utils.py (_compute_default/linear/llama3_parameters).
#include "reef/nn/rope.h"

#include <cmath>

#include "reef/base/error.h"

namespace reef {

torch::Tensor rope_inv_freq(const RopeOptions& o) {
  const int64_t dim = o.head_dim();
  if (dim <= 0 || dim % 2 != 0) usage_error("RoPE needs an even head_dim, got {}", dim);
  // 1 / theta^(arange(0, dim, 2) / dim), in float32 like HF.
  auto exponent =
      torch::arange(0, dim, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(dim);
  auto inv_freq = 1.0 / torch::pow(o.theta(), exponent);
  if (o.scaling() == "none" || o.scaling() == "default" || o.scaling().empty()) return inv_freq;
  if (o.factor() <= 0) usage_error("RoPE scaling factor must be positive, got {}", o.factor());
  if (o.scaling() == "linear") return inv_freq / o.factor();
  if (o.scaling() != "llama3") {
    usage_error("unsupported RoPE scaling '{}': expected none, linear or llama3", o.scaling());
  }
  if (o.high_freq_factor() <= o.low_freq_factor()) {
    usage_error("llama3 RoPE scaling needs high_freq_factor > low_freq_factor, got {} and {}",
                o.high_freq_factor(), o.low_freq_factor());
  }
  // Long wavelengths (beyond the original context) are interpolated by `factor`, short ones kept,
  // and the band in between blended smoothly.
  const double old_len = static_cast<double>(o.original_max_seq_len());
  const double low_freq_wavelen = old_len / o.low_freq_factor();
  const double high_freq_wavelen = old_len / o.high_freq_factor();
  // Scalar-by-tensor divisions are written as Python evaluates them (reciprocal, then multiply),
  // so the band edges round exactly as in transformers.
  auto wavelen = inv_freq.reciprocal() * (2 * M_PI);
  auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / o.factor(), inv_freq);
  auto smooth = (wavelen.reciprocal() * old_len - o.low_freq_factor()) /
                (o.high_freq_factor() - o.low_freq_factor());
  auto smoothed = (1 - smooth) * scaled / o.factor() + smooth * scaled;
  auto is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return torch::where(is_medium, smoothed, scaled);
}

RotaryEmbedding::RotaryEmbedding(const RopeOptions& options)
    : options_(options), inv_freq_(rope_inv_freq(options)) {}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::cos_sin(int64_t start, int64_t length,
                                                                 torch::ScalarType dtype,
                                                                 torch::Device device) const {
  auto angle_dtype = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto opts = torch::TensorOptions().dtype(angle_dtype).device(device);
  auto positions = torch::arange(start, start + length, opts);  // [T]
  auto freqs = torch::outer(positions, inv_freq_.to(opts));     // [T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1);                    // [T, D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::cos_sin_at(const torch::Tensor& positions,
                                                                    torch::ScalarType dtype) const {
  auto angle_dtype = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto opts = torch::TensorOptions().dtype(angle_dtype).device(positions.device());
  auto freqs = positions.to(opts).unsqueeze(-1) * inv_freq_.to(opts);  // [B, T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);              // [B, 1, T, D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin) {
  return x * cos + rotate_half(x) * sin;
}

}  // namespace reef
