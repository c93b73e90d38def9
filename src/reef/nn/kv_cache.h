// KVCache: the keys and values each attention layer has already computed, so incremental
// decoding feeds only the new tokens. Plain tensors grown by concatenation; the infer layer owns
// allocation policy (batching, eviction) on top of this.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace reef {

struct KVCache {
  // Per layer [B, Hkv, T_cached, D]: keys after RoPE, values. Empty (or undefined) = no history.
  std::vector<torch::Tensor> k, v;

  // Cached positions (0 when empty); every layer holds the same number.
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
  void reset() {
    k.clear();
    v.clear();
  }
};

}  // namespace reef
