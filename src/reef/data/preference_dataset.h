// Preference pairs as training rows: one pair per row, its chosen sequence (prompt + chosen) and
// its rejected sequence (prompt + rejected) packed one after the other into seq_len + 1 tokens
// with SFT's block-diagonal isolation (each keeps its own positions and attention span: segment
// 1 is chosen, segment 2 rejected, 0 padding), so one forward pass scores both. With
// share_prompt, the prompt's tokens but its last are laid down once, as a shared prefix
// (segment kSharedPrompt, which both sequences see: nn/packing.h), followed by the chosen
// sequence from the prompt's last token on and then the rejected one from the same token on, at
// the positions they have in their whole sequences: causal attention makes every log-prob
// exactly what the two separate sequences give, for one prompt's compute instead of two. (The
// prompt's last token is repeated because its output predicts a different first answer token
// in each sequence.) The targets that
// count are the completions' tokens. Each sequence is first cut to max_length tokens keeping its
// start, and a pair whose prompt alone fills max_length is dropped, as TRL's DPOTrainer does; a
// pair whose two sequences do not fit a row is dropped (counted) or an error, as data.overlong
// says. Pairs are shuffled per epoch with the run's seed; rows of epoch e never depend on how
// many epochs are built. Each row's values() are its pair's reference log-probs once
// set_reference() has given them, or its {margin} with options.margins.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reef/data/preference.h"
#include "reef/data/sample_index.h"

namespace reef {

// The segment id of a row's shared prompt (a negative id: nn/packing.h).
constexpr int32_t kSharedPrompt = -1;

struct PreferenceRowOptions {
  int64_t seq_len = 0;
  int64_t max_length = 0;         // per sequence (prompt + answer); 0: no cut
  std::string overlong = "drop";  // a pair that does not fit a row: drop | error
  uint64_t seed = 1234;
  bool shuffle = true;   // false: pairs in file order
  int64_t num_rows = 0;  // rows wanted; epochs are added until there are this many (0: one epoch)
  int32_t pad_id = 0;
  // Both sequences within seq_len tokens, so that every token is one of the row's inputs (a
  // reward model reads the last token of each; no next-token target is needed).
  bool inputs_only = false;
  // values() gives each row's pair's {margin} (reward models) instead of reference log-probs.
  bool margins = false;
  // > 0: each epoch's shuffled rows are sorted by length (longest first) within consecutive
  // groups of this many rows, so micro-batches hold pairs of similar length.
  int64_t group_rows = 0;
  // Lay the prompt down once, shared by both sequences (see above).
  bool share_prompt = false;
};

struct PreferenceRowStats {
  int64_t pairs = 0;
  int64_t dropped_prompt = 0;    // prompt alone fills max_length (TRL drops them too)
  int64_t dropped_overlong = 0;  // both sequences do not fit seq_len + 1 tokens
  int64_t truncated = 0;         // pairs with a sequence cut to max_length
  int64_t rows_per_epoch = 0;
};

class PreferenceRows : public GptSampleSource {
 public:
  PreferenceRows(std::shared_ptr<const std::vector<PreferencePair>> pairs,
                 const PreferenceRowOptions& options);

  int64_t num_samples() const override { return static_cast<int64_t>(rows_.size()); }
  int64_t seq_len() const override { return opt_.seq_len; }
  void sample(int64_t i, std::vector<int32_t>* out) const override;
  bool layout(int64_t i, SampleLayout* out) const override;
  // The row's pair's reference log-probs {chosen, rejected} once set_reference() was called.
  bool values(int64_t i, std::vector<float>* out) const override;
  uint64_t fingerprint() const override { return fingerprint_; }
  bool trailing_padding() const override { return true; }

  // What the pairs look like to the model, whatever the shuffling, seq_len or rows: every used
  // pair's token ids after the cut, and max_length. The key of cached reference log-probs.
  uint64_t pairs_fingerprint() const { return pairs_fingerprint_; }
  const PreferenceRowStats& stats() const { return stats_; }
  // Index (into the given pairs) of the pair in row i.
  int32_t pair_of(int64_t i) const { return rows_.at(static_cast<size_t>(i)); }
  // Whether pair k is used (not dropped).
  bool used(int32_t k) const { return use_.at(static_cast<size_t>(k)); }
  int64_t num_pairs() const { return static_cast<int64_t>(use_.size()); }
  // Reference log-probs per pair (index into the given pairs; dropped pairs' entries unused).
  void set_reference(std::vector<float> chosen, std::vector<float> rejected);

 private:
  // The two sequences of pair k after the cut (tokens), and where their completions start.
  void sequences(int32_t k, std::vector<int32_t>* chosen, std::vector<int32_t>* rejected) const;
  // How many of pair p's prompt tokens a row holds once for both sequences.
  size_t shared_tokens(const PreferencePair& p) const;

  std::shared_ptr<const std::vector<PreferencePair>> pairs_;
  PreferenceRowOptions opt_;
  std::vector<bool> use_;
  std::vector<int32_t> rows_;
  std::vector<float> ref_chosen_, ref_rejected_;
  PreferenceRowStats stats_;
  uint64_t fingerprint_ = 0, pairs_fingerprint_ = 0;
};

}  // namespace reef
