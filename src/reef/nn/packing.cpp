// Implementation of nn/packing.h.
#include "reef/nn/packing.h"

#include "reef/base/error.h"

namespace reef {

PackedSequences::PackedSequences(torch::Tensor position_ids, torch::Tensor segment_ids)
    : position_ids_(std::move(position_ids)), segment_ids_(std::move(segment_ids)) {
  if (position_ids_.dim() != 2 || position_ids_.sizes() != segment_ids_.sizes())
    fail("packed layout: position_ids {} and segment_ids {} must both be [B, T]",
         c10::str(position_ids_.sizes()), c10::str(segment_ids_.sizes()));
  const int64_t T = segment_ids_.size(1);
  // Query i (dim 1) may see key j (dim 2) of its own segment or of a shared prefix.
  auto same = (segment_ids_.unsqueeze(2) == segment_ids_.unsqueeze(1)) |
              (segment_ids_ < 0).unsqueeze(1);  // [B, T, T]
  auto causal =
      torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(segment_ids_.device()))
          .tril();
  mask_ = (same & causal).unsqueeze(1);  // [B, 1, T, T]
}

PackedSequences PackedSequences::with_prefix(int64_t prefix) const {
  if (prefix <= 0) return *this;
  const int64_t B = segment_ids_.size(0);
  auto first = segment_ids_.narrow(1, 0, 1);  // [B, 1]
  auto seg = torch::cat({first.expand({B, prefix}), segment_ids_}, 1);
  auto pre_pos = torch::arange(prefix, position_ids_.options()).unsqueeze(0).expand({B, prefix});
  // The first sample moves right by `prefix`; after a shared prefix, so do the samples that
  // continue it (every sample but padding).
  auto moved = (segment_ids_ == first) | ((first < 0) & (segment_ids_ != 0));
  auto pos = position_ids_ + moved.to(position_ids_.scalar_type()) * prefix;
  return PackedSequences(torch::cat({pre_pos, pos}, 1), seg);
}

torch::Tensor PackedSequences::positions(int64_t batch, int64_t length,
                                         torch::Device device) const {
  if (batch != position_ids_.size(0) || length != position_ids_.size(1))
    fail("packed layout is [{}, {}] but the batch is [{}, {}]", position_ids_.size(0),
         position_ids_.size(1), batch, length);
  return position_ids_.to(device);
}

CachedKV PackedSequences::store(int64_t /*layer*/, const torch::Tensor& k, const torch::Tensor& v) {
  return {k, v, mask_.device() == k.device() ? mask_ : mask_.to(k.device())};
}

}  // namespace reef
