// Key/value caches for incremental decoding. AttentionCache is what attention layers talk to:
// where the new tokens sit (positions) and what they attend over (stored history plus mask).
// KVCache is the plain one: tensors grown by concatenation, one uniform length for the whole
// batch. SlotKVCache (nn/slot_kv_cache.h) is the continuous-batching one: preallocated slots,
// each batch row with its own position and cached length. The infer layer owns allocation
// policy (batching, admission) on top of these.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace reef {

// The history one attention layer attends over after storing its new keys/values.
struct CachedKV {
  torch::Tensor k, v;  // [B, Hkv, S, D]: keys after RoPE, values
  // [B, 1, T, S] bool (true = attend), or undefined: plain causal with the T queries at the last
  // T of the S key positions.
  torch::Tensor mask;
};

class AttentionCache {
 public:
  virtual ~AttentionCache() = default;
  // Positions of the T new tokens of each of the B rows: [B, T] int64 on `device`.
  virtual torch::Tensor positions(int64_t batch, int64_t length, torch::Device device) const = 0;
  // Stores layer `layer`'s new keys/values [B, Hkv, T, D] and returns what the T queries attend
  // over. Every layer of one forward pass stores the same T tokens.
  virtual CachedKV store(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) = 0;
};

struct KVCache : AttentionCache {
  // Per layer [B, Hkv, T_cached, D]: keys after RoPE, values. Empty (or undefined) = no history.
  std::vector<torch::Tensor> k, v;

  // Cached positions (0 when empty); every layer holds the same number.
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
  void reset() {
    k.clear();
    v.clear();
  }
  // length() .. length()+T-1 for every row.
  torch::Tensor positions(int64_t batch, int64_t length, torch::Device device) const override;
  // Appends (see append_to_cache in nn/attention.h); no mask.
  CachedKV store(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) override;
};

}  // namespace reef
