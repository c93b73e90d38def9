// The GPT sample index over an indexed dataset, following megatron-core's gpt_dataset.py:
// the documents of one split (train/valid/test, cut by document with a "969,30,1"-style
// string) are shuffled per epoch and concatenated across document boundaries; sample j starts
// j*seq_len tokens into that stream and holds seq_len+1 tokens (inputs and shifted targets);
// the samples are then visited in a seeded shuffled order, shuffled in blocks of one epoch's
// worth so that sample i does not depend on how many samples are asked for (a resumed run with
// more steps continues the same order). The index is deterministic in its inputs and cached
// beside the data (PREFIX.<key>.sidx), rebuilt when any input changes.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reef/base/files.h"
#include "reef/data/indexed_dataset.h"

namespace reef {

enum class Split { kTrain = 0, kValid = 1, kTest = 2 };
const char* split_name(Split s);

// Parses Megatron's split string ("969,30,1", "0.9,0.1", "1"): up to three non-negative
// weights, missing ones are 0, normalized to sum 1. Throws a usage error otherwise.
std::array<double, 3> parse_split(const std::string& split);
// Document boundaries {0, a, b, n_docs} as megatron-core cuts them (each cumulative fraction
// times n, rounded); split k is documents [b[k], b[k+1]).
std::array<int64_t, 4> split_boundaries(const std::array<double, 3>& weights, int64_t n_docs);

// What a sample holds beyond its tokens when it is not one plain causal sequence (SFT samples,
// packed samples). Index t is input t, whose target is token t+1.
struct SampleLayout {
  std::vector<uint8_t> target_mask;   // [seq_len]: 1 = the loss counts target t
  std::vector<int32_t> position_ids;  // [seq_len]: input t's position within its own sample
  std::vector<int32_t> segment_ids;   // [seq_len]: which sample of the row input t belongs to;
                                      // attention never crosses segments
};

// Anything that serves fixed-length GPT samples by index: one dataset or a blend.
class GptSampleSource {
 public:
  virtual ~GptSampleSource() = default;
  virtual int64_t num_samples() const = 0;
  virtual int64_t seq_len() const = 0;
  // Replaces *out with the seq_len+1 tokens of sample i (0 <= i < num_samples()).
  virtual void sample(int64_t i, std::vector<int32_t>* out) const = 0;
  // Pins down the content and order of the samples, whatever num_samples is: equal
  // fingerprints mean sample i is the same tokens in both (what exact resume relies on).
  virtual uint64_t fingerprint() const = 0;
  // Fills *out for sample i and returns true when the sample has a layout; false (the default):
  // every target counts and the row is one causal sequence from position 0.
  virtual bool layout(int64_t /*i*/, SampleLayout* /*out*/) const { return false; }
  // Fills *out with per-sample numbers a loss reads besides the tokens (DPO's reference
  // log-probs of the pair in the row) and returns true; false (the default): none. Every sample
  // of a source gives the same count.
  virtual bool values(int64_t /*i*/, std::vector<float>* /*out*/) const { return false; }
  // Whether a row's layout ends in padding (segment 0) that takes no part in anything, so that a
  // micro-batch may drop the columns every row pads (train/batches.h's trim_trailing_padding).
  virtual bool trailing_padding() const { return false; }
};

struct GptIndexOptions {
  int64_t seq_len = 0;
  uint64_t seed = 1234;
  std::string split = "969,30,1";
  Split which = Split::kTrain;
  // Samples wanted; the documents are repeated over as many epochs as that takes.
  // 0: one epoch, as many whole samples as it holds.
  int64_t num_samples = 0;
  // Where the .sidx cache goes; empty: beside the data.
  std::string cache_dir;
};

class GptDataset : public GptSampleSource {
 public:
  GptDataset(std::shared_ptr<const IndexedDataset> data, GptIndexOptions opts);
  GptDataset(const std::string& prefix, GptIndexOptions opts);

  int64_t num_samples() const override { return n_samples_; }
  int64_t seq_len() const override { return opts_.seq_len; }
  void sample(int64_t i, std::vector<int32_t>* out) const override;
  uint64_t fingerprint() const override { return fingerprint_; }

  int64_t num_epochs() const { return n_epochs_; }
  // Documents [begin, end) of the dataset that form this split.
  int64_t document_begin() const { return doc_begin_; }
  int64_t document_end() const { return doc_end_; }
  // The concatenated stream: document ids, epoch after epoch, in shuffled order.
  std::vector<int64_t> document_order() const;
  // Position of sample i in the unshuffled stream: sample i starts at
  // unshuffled_index(i) * seq_len tokens into the concatenation of document_order().
  int64_t unshuffled_index(int64_t i) const;
  const std::string& cache_path() const { return cache_path_; }
  bool loaded_from_cache() const { return from_cache_; }
  const IndexedDataset& data() const { return *data_; }

 private:
  uint64_t compute_cache_key();  // also sets fingerprint_
  bool load_cache();
  void build_and_save();
  void check_index(int64_t i) const;

  std::shared_ptr<const IndexedDataset> data_;
  GptIndexOptions opts_;
  int64_t doc_begin_ = 0, doc_end_ = 0;
  int64_t n_samples_ = 0, n_epochs_ = 0, n_order_ = 0;
  uint64_t key_ = 0, fingerprint_ = 0;
  std::string cache_path_;
  bool from_cache_ = false;
  // The .sidx file mapped: document order, (order position, offset) per sample, shuffle.
  std::shared_ptr<MappedFile> map_;
  const int64_t* order_ = nullptr;
  const int64_t* starts_ = nullptr;
  const int64_t* shuffle_ = nullptr;
};

// A small deterministic generator (splitmix64) and Fisher-Yates shuffle, identical on every
// platform and standard library, so that the same seed gives the same order everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n), n > 0

 private:
  uint64_t state_;
};
void seeded_shuffle(int64_t* v, int64_t n, uint64_t seed);

}  // namespace reef
