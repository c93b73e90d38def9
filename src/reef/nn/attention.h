// Causal self-attention for the llama family: q/k/v/o projections, multi-head, grouped-query
// (GQA) and multi-query (MQA) layouts, optional per-head RMSNorm on q and k (Qwen3), RoPE, and
// an optional KV cache for incremental decoding (plain or slot-based, see nn/kv_cache.h). The
// scaled-dot-product core is shared with GPT-2's fused-qkv attention (models/gpt2.cpp).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>

#include "reef/nn/hooks.h"
#include "reef/nn/kv_cache.h"
#include "reef/nn/linear.h"
#include "reef/nn/norms.h"

namespace reef {

// Appends this step's keys/values [B, Hkv, T, D] to layer `layer` of `cache` (growing its
// vectors as needed) and returns the full history [B, Hkv, S, D], S = cached + T. Without a
// cache it returns k, v unchanged.
std::pair<torch::Tensor, torch::Tensor> append_to_cache(KVCache* cache, int64_t layer,
                                                        const torch::Tensor& k,
                                                        const torch::Tensor& v);

// [B, Hkv, S, D] -> [B, Hkv * n_rep, S, D], each kv head serving n_rep consecutive query heads
// (HF's repeat_kv order).
torch::Tensor repeat_kv(const torch::Tensor& x, int64_t n_rep);

// Causal attention where the T queries sit at the last T of the S key positions.
// q [B, H, T, D], k/v [B, Hkv, S, D] with H % Hkv == 0 -> [B, H, T, D]. Scale 1/sqrt(D).
// S == T: is_causal; T == 1: no mask (the single query sees all history); otherwise an explicit
// boolean mask (query i sees keys 0 .. S-T+i).
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v);

// Attention of q [B, H, T, D] over k/v [B, Hkv, S, D] under mask [B, 1, T, S] (true = attend).
torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& mask);

// Self-attention of this step's q [B, H, T, D], k/v [B, Hkv, T, D]: without a cache plain
// causal attention; with one, k/v are stored in layer `layer` and the queries attend over what
// the cache returns. -> [B, H, T, D]
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     AttentionCache* cache, int64_t layer);

struct AttentionOptions {
  AttentionOptions(int64_t hidden_size, int64_t n_heads)
      : hidden_size_(hidden_size), n_heads_(n_heads) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, n_heads);
  TORCH_ARG(int64_t, n_kv_heads) = 0;  // 0 = n_heads
  TORCH_ARG(int64_t, head_dim) = 0;    // 0 = hidden_size / n_heads
  TORCH_ARG(bool, qkv_bias) = false;   // biases on q_proj/k_proj/v_proj
  TORCH_ARG(bool, o_bias) = false;     // bias on o_proj
  TORCH_ARG(bool, qk_norm) = false;    // RMSNorm over D on each head of q and k, before RoPE
  TORCH_ARG(double, norm_eps) = 1e-5;  // for qk_norm
};

class AttentionImpl : public torch::nn::Module, public InputHook {
 public:
  explicit AttentionImpl(const AttentionOptions& options);

  // x [B, T, C]; cos/sin [T, D] (or [B, 1, T, D] when rows sit at different positions) for the
  // new positions (undefined = no RoPE); with a cache the
  // new keys/values are appended to layer `layer` and attention covers the history.
  // Returns [B, T, C].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        AttentionCache* cache = nullptr, int64_t layer = 0);
  const AttentionOptions& options() const { return options_; }  // resolved (no zeros)

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // only with qk_norm
  // The input hook (nn/hooks.h) applies to x before the q/k/v projections. The head counts
  // forward uses follow the projections' output sizes, so parallel/ can run this module on a
  // subset of the heads (tensor parallelism) by slicing q/k/v/o and setting the hook. It may
  // lengthen the sequence (sequence parallelism: a slice in, the whole sequence out); the
  // output then has the hook's length until o_proj's matmul hook gives the slice back.

 private:
  AttentionOptions options_;
};
TORCH_MODULE(Attention);

}  // namespace reef
