// Causal self-attention (see attention.h). Uses at::scaled_dot_product_attention so CPU and CUDA
// pick their fused kernels; GQA repeats kv heads explicitly to build against any libtorch 2.x.
#include "reef/nn/attention.h"

#include "reef/base/error.h"
#include "reef/nn/linear.h"
#include "reef/nn/rope.h"

namespace reef {

std::pair<torch::Tensor, torch::Tensor> append_to_cache(KVCache* cache, int64_t layer,
                                                        const torch::Tensor& k,
                                                        const torch::Tensor& v) {
  if (cache == nullptr) return {k, v};
  auto n = static_cast<size_t>(layer) + 1;
  if (cache->k.size() < n) cache->k.resize(n);
  if (cache->v.size() < n) cache->v.resize(n);
  auto& ck = cache->k[layer];
  auto& cv = cache->v[layer];
  if (ck.defined() && ck.size(2) > 0) {
    if (ck.size(0) != k.size(0)) {
      fail("KV cache holds batch size {} but the input has {}", ck.size(0), k.size(0));
    }
    ck = torch::cat({ck, k}, 2);
    cv = torch::cat({cv, v}, 2);
  } else {
    ck = k;
    cv = v;
  }
  return {ck, cv};
}

torch::Tensor KVCache::positions(int64_t batch, int64_t length, torch::Device device) const {
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const int64_t start = this->length();
  return torch::arange(start, start + length, opts).unsqueeze(0).expand({batch, length});
}

CachedKV KVCache::store(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  auto [k_all, v_all] = append_to_cache(this, layer, k, v);
  return {k_all, v_all, torch::Tensor()};
}

torch::Tensor repeat_kv(const torch::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  auto b = x.size(0), h = x.size(1), s = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({b, h, n_rep, s, d}).reshape({b, h * n_rep, s, d});
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v) {
  const int64_t t = q.size(2), s = k.size(2);
  if (s < t) fail("attention has {} queries but only {} keys", t, s);
  if (q.size(1) % k.size(1) != 0) {
    fail("{} query heads are not a multiple of {} kv heads", q.size(1), k.size(1));
  }
  const int64_t n_rep = q.size(1) / k.size(1);
  auto kr = repeat_kv(k, n_rep), vr = repeat_kv(v, n_rep);
  if (s == t) {
    return at::scaled_dot_product_attention(q, kr, vr, /*attn_mask=*/{}, 0.0, /*is_causal=*/true);
  }
  if (t == 1) return at::scaled_dot_product_attention(q, kr, vr, {}, 0.0, false);
  // is_causal aligns the mask top-left, which is wrong once queries start after position 0.
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(q.device());
  auto q_pos = torch::arange(s - t, s, opts).unsqueeze(1);  // [T, 1]
  auto k_pos = torch::arange(0, s, opts).unsqueeze(0);      // [1, S]
  auto mask = k_pos <= q_pos;                               // [T, S] bool, true = attend
  return at::scaled_dot_product_attention(q, kr, vr, mask, 0.0, false);
}

torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& mask) {
  if (q.size(1) % k.size(1) != 0) {
    fail("{} query heads are not a multiple of {} kv heads", q.size(1), k.size(1));
  }
  const int64_t n_rep = q.size(1) / k.size(1);
  return at::scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), mask, 0.0,
                                          false);
}

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     AttentionCache* cache, int64_t layer) {
  if (cache == nullptr) return causal_attention(q, k, v);
  CachedKV kv = cache->store(layer, k, v);
  if (kv.mask.defined()) return masked_attention(q, kv.k, kv.v, kv.mask);
  return causal_attention(q, kv.k, kv.v);
}

AttentionImpl::AttentionImpl(const AttentionOptions& options) : options_(options) {
  auto& o = options_;
  if (o.n_heads() <= 0) usage_error("attention needs n_heads > 0, got {}", o.n_heads());
  if (o.n_kv_heads() == 0) o.n_kv_heads(o.n_heads());
  if (o.head_dim() == 0) {
    if (o.hidden_size() % o.n_heads() != 0) {
      usage_error("hidden_size {} is not divisible by n_heads {}", o.hidden_size(), o.n_heads());
    }
    o.head_dim(o.hidden_size() / o.n_heads());
  }
  if (o.n_kv_heads() <= 0 || o.n_heads() % o.n_kv_heads() != 0) {
    usage_error("n_heads {} must be a multiple of n_kv_heads {}", o.n_heads(), o.n_kv_heads());
  }
  auto lin = [](int64_t in, int64_t out, bool bias) { return Linear(in, out, bias); };
  const int64_t q_dim = o.n_heads() * o.head_dim(), kv_dim = o.n_kv_heads() * o.head_dim();
  q_proj = register_module("q_proj", lin(o.hidden_size(), q_dim, o.qkv_bias()));
  k_proj = register_module("k_proj", lin(o.hidden_size(), kv_dim, o.qkv_bias()));
  v_proj = register_module("v_proj", lin(o.hidden_size(), kv_dim, o.qkv_bias()));
  o_proj = register_module("o_proj", lin(q_dim, o.hidden_size(), o.o_bias()));
  if (o.qk_norm()) {
    q_norm = register_module("q_norm", RMSNorm(RMSNormOptions(o.head_dim()).eps(o.norm_eps())));
    k_norm = register_module("k_norm", RMSNorm(RMSNormOptions(o.head_dim()).eps(o.norm_eps())));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x_in, const torch::Tensor& cos,
                                     const torch::Tensor& sin, AttentionCache* cache,
                                     int64_t layer) {
  const auto& o = options_;
  const auto x = hooked(x_in);  // sequence parallelism: the whole sequence
  const int64_t b = x.size(0), t = x.size(1);
  // H and Hkv are the projections' (all heads, or a tensor-parallel rank's share of them).
  const int64_t h = q_proj->out_features / o.head_dim(), hkv = k_proj->out_features / o.head_dim();
  auto q = q_proj(x).view({b, t, h, o.head_dim()});    // [B, T, H, D]
  auto k = k_proj(x).view({b, t, hkv, o.head_dim()});  // [B, T, Hkv, D]
  auto v = v_proj(x).view({b, t, hkv, o.head_dim()});
  if (o.qk_norm()) {  // per head, before RoPE (Qwen3)
    q = q_norm(q);
    k = k_norm(k);
  }
  q = q.transpose(1, 2);  // [B, H, T, D]
  k = k.transpose(1, 2);  // [B, Hkv, T, D]
  v = v.transpose(1, 2);
  if (cos.defined()) {
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
  }
  auto y = attend(q, k, v, cache, layer);  // [B, H, T, D]
  y = y.transpose(1, 2).reshape({b, t, h * o.head_dim()});
  return o_proj(y);
}

}  // namespace reef
