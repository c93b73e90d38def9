// ggml's K-quants for GGUF export: super-blocks of 256 values with quantized per-sub-block scales,
// computed as ggml's reference quantizers do (quantize_row_q4_K_ref, quantize_row_q6_K_ref: the
// same scale searches, the same rounding), so a file Reef writes holds what llama.cpp's own
// quantizer writes for the same weights (bench/gguf_llamacpp.py compares them byte for byte).
#pragma once

#include <cstdint>
#include <string>

namespace reef {

inline constexpr int64_t kQKK = 256;  // values per K-quant super-block

// q4_K: per super-block fp16 d and dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of
// 32, 128 bytes of 4-bit codes (x = d*sc*q - dmin*m); 144 bytes per 256 values.
std::string quantize_q4_k(const float* x, int64_t n);
// q6_K: per super-block 128 bytes of low 4 bits, 64 of high 2 bits, 16 int8 sub-block scales and
// an fp16 d (x = d*scale*(q - 32)); 210 bytes per 256 values.
std::string quantize_q6_k(const float* x, int64_t n);

}  // namespace reef
