// Packed sequences: several samples laid end to end in one row of a batch. As an AttentionCache
// (nn/kv_cache.h) it gives the layers each token's position within its own sample and a mask
// that lets a query see only earlier keys of the same sample, so a packed batch computes exactly
// what running its samples one by one would. Nothing is cached: it describes one forward pass.
#pragma once

#include <torch/torch.h>

#include "reef/nn/kv_cache.h"

namespace reef {

class PackedSequences : public AttentionCache {
 public:
  // position_ids, segment_ids: [B, T] int64. Tokens of one sample share a segment id (any value;
  // a new sample must start a new id where it follows another); positions count from 0 within
  // each sample. A negative id marks a shared prefix: every later token of the row sees it, and
  // the samples that continue it start their positions where it ends (preference pairs lay
  // their common prompt down once this way: data/preference_dataset.h). Padding is id 0.
  PackedSequences(torch::Tensor position_ids, torch::Tensor segment_ids);

  // The layout of `prefix` extra tokens put before every row (prompt tuning's virtual tokens):
  // they belong to the row's first sample, so positions shift by `prefix` there, and every query
  // of that sample also sees them. A layout for rows of P + T tokens.
  PackedSequences with_prefix(int64_t prefix) const;

  torch::Tensor positions(int64_t batch, int64_t length, torch::Device device) const override;
  // Returns k, v as given with the mask [B, 1, T, T]: key j <= query i in the same segment, or
  // in a shared prefix.
  CachedKV store(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) override;

  const torch::Tensor& mask() const { return mask_; }

 private:
  torch::Tensor position_ids_, segment_ids_, mask_;
};

}  // namespace reef
