// SlotKVCache (see slot_kv_cache.h).
#include "reef/nn/slot_kv_cache.h"

#include <algorithm>

#include "reef/base/error.h"

namespace reef {

SlotKVCache::SlotKVCache(const SlotKVCacheOptions& o) : options_(o) {
  if (o.n_layers <= 0 || o.n_slots <= 0 || o.n_kv_heads <= 0 || o.max_len <= 0 || o.head_dim <= 0) {
    usage_error(
        "KV slots need positive sizes, got layers {} slots {} kv heads {} length {} head dim {}",
        o.n_layers, o.n_slots, o.n_kv_heads, o.max_len, o.head_dim);
  }
  auto opts = torch::TensorOptions().dtype(o.dtype).device(o.device);
  for (int64_t i = 0; i < o.n_layers; ++i) {
    k_.push_back(torch::zeros({o.n_slots, o.n_kv_heads, o.max_len, o.head_dim}, opts));
    v_.push_back(torch::zeros({o.n_slots, o.n_kv_heads, o.max_len, o.head_dim}, opts));
  }
}

int64_t SlotKVCache::bytes_per_slot(const SlotKVCacheOptions& o) {
  return 2 * o.n_layers * o.n_kv_heads * o.max_len * o.head_dim *
         static_cast<int64_t>(c10::elementSize(o.dtype));
}

void SlotKVCache::set_batch(const std::vector<int64_t>& slots,
                            const std::vector<int64_t>& lengths) {
  if (slots.empty() || slots.size() != lengths.size()) {
    fail("KV slot batch needs one length per slot, got {} slots and {} lengths", slots.size(),
         lengths.size());
  }
  for (size_t b = 0; b < slots.size(); ++b) {
    if (slots[b] < 0 || slots[b] >= options_.n_slots) {
      fail("KV slot {} does not exist (there are {})", slots[b], options_.n_slots);
    }
    if (lengths[b] < 0 || lengths[b] >= options_.max_len) {
      fail("KV slot {} cannot hold more than {} tokens, asked to extend {}", slots[b],
           options_.max_len, lengths[b]);
    }
  }
  slots_ = slots;
  lengths_ = lengths;
  slot_index_ = torch::tensor(slots_, torch::kInt64).to(options_.device);
}

torch::Tensor SlotKVCache::positions(int64_t batch, int64_t length, torch::Device device) const {
  if (batch != static_cast<int64_t>(lengths_.size())) {
    fail("the forward pass has {} rows but the KV slot batch has {}", batch, lengths_.size());
  }
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto starts = torch::tensor(lengths_, torch::kInt64).to(device).unsqueeze(1);  // [B, 1]
  return starts + torch::arange(length, opts).unsqueeze(0);                      // [B, T]
}

CachedKV SlotKVCache::store(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  if (layer < 0 || layer >= options_.n_layers) fail("KV slots have no layer {}", layer);
  const int64_t b = k.size(0), t = k.size(2);
  if (b != static_cast<int64_t>(slots_.size())) {
    fail("the forward pass has {} rows but the KV slot batch has {}", b, slots_.size());
  }
  int64_t total = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (lengths_[i] + t > options_.max_len) {
      fail("KV slot {} holds {} tokens and cannot take {} more (max {})", slots_[i], lengths_[i], t,
           options_.max_len);
    }
    total = std::max(total, lengths_[i] + t);
  }
  auto& ck = k_[layer];
  auto& cv = v_[layer];
  for (int64_t i = 0; i < b; ++i) {
    ck[slots_[i]].narrow(1, lengths_[i], t).copy_(k[i]);  // [Hkv, T, D]
    cv[slots_[i]].narrow(1, lengths_[i], t).copy_(v[i]);
  }
  CachedKV out;
  out.k = ck.narrow(2, 0, total).index_select(0, slot_index_);  // [B, Hkv, L, D]
  out.v = cv.narrow(2, 0, total).index_select(0, slot_index_);
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(k.device());
  auto q_pos = positions(b, t, k.device()).unsqueeze(2);        // [B, T, 1]
  auto k_pos = torch::arange(total, opts).view({1, 1, total});  // [1, 1, L]
  out.mask = (k_pos <= q_pos).unsqueeze(1);                     // [B, 1, T, L]
  return out;
}

void SlotKVCache::copy_prefix(int64_t from_slot, int64_t to_slot, int64_t length) {
  if (from_slot < 0 || from_slot >= options_.n_slots || to_slot < 0 ||
      to_slot >= options_.n_slots || length < 0 || length > options_.max_len) {
    fail("cannot copy {} KV positions from slot {} to slot {} ({} slots of {})", length, from_slot,
         to_slot, options_.n_slots, options_.max_len);
  }
  if (length == 0 || from_slot == to_slot) return;
  for (int64_t l = 0; l < options_.n_layers; ++l) {
    k_[l][to_slot].narrow(1, 0, length).copy_(k_[l][from_slot].narrow(1, 0, length));
    v_[l][to_slot].narrow(1, 0, length).copy_(v_[l][from_slot].narrow(1, 0, length));
  }
}

}  // namespace reef
