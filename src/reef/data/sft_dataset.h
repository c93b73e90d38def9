// Fine-tuning samples as fixed-length training rows: SFT samples (data/sft.h) are shuffled per
// epoch with the run's seed and either packed end to end into rows of seq_len + 1 tokens
// (several samples per row; each keeps its own positions, its own attention span and its own
// loss mask: the target that would cross into the next sample never counts), or padded one per
// row. Samples longer than a row are dropped, cut or refused as the config says, and the counts
// are reported. Rows of epoch e never depend on how many epochs are built, so a resumed run that
// asks for more steps continues the same order; the fingerprint covers the samples' tokens and
// masks and every packing setting.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reef/data/sample_index.h"
#include "reef/data/sft.h"

namespace reef {

struct SftRowOptions {
  int64_t seq_len = 0;
  bool packing = true;
  std::string overlong = "drop";  // drop | truncate | error
  uint64_t seed = 1234;
  bool shuffle = true;   // false: samples in file order (validation)
  int64_t num_rows = 0;  // rows wanted; epochs are added until there are this many (0: one epoch)
  int32_t pad_id = 0;    // filler after the last sample of a row (never a target)
};

struct SftRowStats {
  int64_t samples = 0;    // samples given
  int64_t dropped = 0;    // longer than a row, dropped (or left with nothing to learn after a cut)
  int64_t truncated = 0;  // cut to the row length
  int64_t rows_per_epoch = 0;
  int64_t tokens = 0;      // sample tokens per epoch (after cuts)
  int64_t supervised = 0;  // supervised tokens per epoch
  double fill = 0;         // sample tokens / row tokens over an epoch
};

class SftRows : public GptSampleSource {
 public:
  SftRows(std::shared_ptr<const std::vector<SftSample>> samples, const SftRowOptions& options);

  int64_t num_samples() const override { return static_cast<int64_t>(rows_.size()); }
  int64_t seq_len() const override { return opt_.seq_len; }
  void sample(int64_t i, std::vector<int32_t>* out) const override;
  bool layout(int64_t i, SampleLayout* out) const override;
  uint64_t fingerprint() const override { return fingerprint_; }

  const SftRowStats& stats() const { return stats_; }
  // The sample indices (into the given vector) packed into row i, in order.
  const std::vector<int32_t>& row(int64_t i) const { return rows_.at(static_cast<size_t>(i)); }

 private:
  std::shared_ptr<const std::vector<SftSample>> samples_;
  SftRowOptions opt_;
  std::vector<int64_t> length_;  // per sample: tokens used (after a cut), 0 = dropped
  std::vector<std::vector<int32_t>> rows_;
  SftRowStats stats_;
  uint64_t fingerprint_ = 0;
};

}  // namespace reef
