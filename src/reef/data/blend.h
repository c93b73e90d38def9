// Blending several GPT datasets with weights, as megatron-core's BlendedDataset: the blend is
// given as Megatron's list [w1, prefix1, w2, prefix2, ...] (or prefixes alone), and sample i
// of the blend is drawn from the dataset whose share is furthest behind its weight (the
// deterministic greedy "largest error" index of Megatron's helpers.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reef/data/sample_index.h"

namespace reef {

struct BlendEntry {
  double weight = -1.0;  // as given; -1 when the spec had no weights
  std::string prefix;
};

// Parses ["0.3", "a", "0.7", "b"] or ["a", "b"] (no weights: blended by size). Throws a usage
// error naming the bad element.
std::vector<BlendEntry> parse_blend(const std::vector<std::string>& spec);

// Megatron's build_blending_indices: for sample i, choose the dataset d maximizing
// weights[d] * max(i, 1) - count[d] (first on ties); record d and count[d], then count[d]++.
// `weights` must be normalized. With `limits`, a dataset whose count reached its limit is no
// longer chosen (Megatron's exhaustive variant, for blends by size).
void build_blending_indices(const std::vector<double>& weights, int64_t size,
                            std::vector<int32_t>* dataset_index,
                            std::vector<int64_t>* dataset_sample_index,
                            const std::vector<int64_t>* limits = nullptr);

class BlendedGptDataset : public GptSampleSource {
 public:
  // weights are normalized here; every child must have the same seq_len and at least as many
  // samples as the blend draws from it. exhaustive: never draw past a child's num_samples().
  BlendedGptDataset(std::vector<std::unique_ptr<GptSampleSource>> children,
                    std::vector<double> weights, int64_t size, bool exhaustive = false);

  int64_t num_samples() const override { return static_cast<int64_t>(dataset_index_.size()); }
  int64_t seq_len() const override { return children_.front()->seq_len(); }
  void sample(int64_t i, std::vector<int32_t>* out) const override;
  // The children's fingerprints and the normalized weights (the greedy index is a function of
  // the weights alone, so it too is the same for every size).
  uint64_t fingerprint() const override;

  const std::vector<int32_t>& dataset_index() const { return dataset_index_; }
  const std::vector<int64_t>& dataset_sample_index() const { return dataset_sample_index_; }
  const GptSampleSource& child(size_t k) const { return *children_.at(k); }
  const std::vector<double>& weights() const { return weights_; }

 private:
  std::vector<std::unique_ptr<GptSampleSource>> children_;
  std::vector<double> weights_;
  std::vector<int32_t> dataset_index_;
  std::vector<int64_t> dataset_sample_index_;
};

// One prefix without weight: a GptDataset. Several: a blend. With weights, opts.num_samples
// must be > 0 and each dataset builds ceil(w * num_samples * 1.005) samples (Megatron's
// surplus); without weights, each dataset gives one epoch, blended in proportion to its size,
// num_samples (when > 0) capping the total.
std::unique_ptr<GptSampleSource> open_gpt_samples(const std::vector<std::string>& blend,
                                                  const GptIndexOptions& opts);

}  // namespace reef
