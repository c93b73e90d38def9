// SlotKVCache: the KV store continuous batching decodes from. Every layer owns preallocated
// keys/values [S, Hkv, Tmax, D] for S slots (one sequence each), so sequences of different
// lengths share one forward pass: before each pass the caller says which slot every batch row
// uses and how many tokens that slot already holds (set_batch); the new tokens are written at
// those offsets and each row attends over its own valid prefix only (a per-row mask). Slot
// bookkeeping (which slot is free, how long each sequence is) belongs to the caller
// (infer/engine.h); this class only stores and gathers.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "reef/nn/kv_cache.h"

namespace reef {

struct SlotKVCacheOptions {
  int64_t n_layers = 1;
  int64_t n_slots = 1;
  int64_t n_kv_heads = 1;
  int64_t max_len = 1;  // Tmax: tokens one slot holds (prompt + generation)
  int64_t head_dim = 1;
  torch::ScalarType dtype = torch::kFloat;
  torch::Device device = torch::kCPU;
};

class SlotKVCache : public AttentionCache {
 public:
  explicit SlotKVCache(const SlotKVCacheOptions& options);

  // Bytes of keys + values one slot takes over all layers.
  static int64_t bytes_per_slot(const SlotKVCacheOptions& options);

  // The next forward's rows: row b writes into slot slots[b], which already caches lengths[b]
  // tokens; its T new tokens get positions lengths[b] .. lengths[b]+T-1, which must stay below
  // max_len. Throws reef::Error for a bad slot or an overflow.
  void set_batch(const std::vector<int64_t>& slots, const std::vector<int64_t>& lengths);

  torch::Tensor positions(int64_t batch, int64_t length, torch::Device device) const override;
  // Writes k/v [B, Hkv, T, D] into the rows' slots and returns the rows' histories
  // [B, Hkv, L, D], L = max(lengths[b] + T), with the mask [B, 1, T, L] that lets query t of
  // row b see keys 0 .. lengths[b] + t.
  CachedKV store(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) override;

  // Copies the first `length` cached positions of every layer from one slot to another (prefix
  // caching: a prompt that starts like another slot's tokens reuses their keys and values).
  void copy_prefix(int64_t from_slot, int64_t to_slot, int64_t length);

  const SlotKVCacheOptions& options() const { return options_; }

 private:
  SlotKVCacheOptions options_;
  std::vector<torch::Tensor> k_, v_;  // per layer [S, Hkv, Tmax, D]
  std::vector<int64_t> slots_, lengths_;
  torch::Tensor slot_index_;  // [B] int64 on the cache's device
};

}  // namespace reef
