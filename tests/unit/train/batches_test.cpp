// Tests for train/batches.h's trailing-padding trim on preference rows (a pair's chosen and
// rejected sequences, then padding): the trimmed micro-batch keeps exactly the columns some
// row uses (rounded up to a multiple), and the model's outputs on every token that is not
// padding are the untrimmed batch's; and for PreferenceRows' group_by_length ordering.
#include "reef/train/batches.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "../parallel/model_copies.h"
#include "reef/data/preference_dataset.h"
#include "reef/models/causal_lm.h"
#include "reef/nn/packing.h"

namespace reef {
namespace {

std::shared_ptr<std::vector<PreferencePair>> pairs(int n) {
  auto out = std::make_shared<std::vector<PreferencePair>>();
  for (int i = 0; i < n; ++i) {
    PreferencePair p;
    for (int t = 0; t < 2 + i % 3; ++t) p.prompt.push_back(5 + t);
    for (int t = 0; t < 1 + (i * 7) % 5; ++t) p.chosen.push_back(10 + t + i);
    for (int t = 0; t < 1 + (i * 3) % 4; ++t) p.rejected.push_back(30 + t);
    p.source = "x:" + std::to_string(i + 1);
    out->push_back(std::move(p));
  }
  return out;
}

size_t length(const PreferencePair& p) {
  return 2 * p.prompt.size() + p.chosen.size() + p.rejected.size();
}

// The same rows without the trailing-padding promise: make_train_batch keeps every column.
class Untrimmed : public GptSampleSource {
 public:
  explicit Untrimmed(const PreferenceRows& rows) : rows_(rows) {}
  int64_t num_samples() const override { return rows_.num_samples(); }
  int64_t seq_len() const override { return rows_.seq_len(); }
  void sample(int64_t i, std::vector<int32_t>* out) const override { rows_.sample(i, out); }
  uint64_t fingerprint() const override { return rows_.fingerprint(); }
  bool layout(int64_t i, SampleLayout* out) const override { return rows_.layout(i, out); }

 private:
  const PreferenceRows& rows_;
};

TEST(TrimTrailingPadding, KeepsTheUsedColumnsAndTheOutputs) {
  auto all = pairs(6);
  PreferenceRowOptions o;
  o.seq_len = 40;
  o.shuffle = false;
  PreferenceRows rows(all, o);
  const ModelConfig cfg = testing::tiny_llama_config();
  TrainBatch full = make_train_batch(Untrimmed(rows), 0, 4, cfg.vocab_size, torch::kCPU);
  ASSERT_EQ(full.inputs.input_ids.size(1), 40);
  TrainBatch cut = full;
  trim_trailing_padding(cut);
  // Preference rows promise trailing padding: make_train_batch trims them itself.
  TrainBatch made = make_train_batch(rows, 0, 4, cfg.vocab_size, torch::kCPU);
  EXPECT_TRUE(torch::equal(made.inputs.input_ids, cut.inputs.input_ids));
  EXPECT_TRUE(torch::equal(made.targets, cut.targets));
  EXPECT_EQ(make_train_batch(rows, 0, 4, cfg.vocab_size, torch::kCPU, 4).inputs.input_ids.size(1),
            (cut.inputs.input_ids.size(1) + 3) / 4 * 4);
  size_t longest = 0;
  for (int i = 0; i < 4; ++i) longest = std::max(longest, length((*all)[rows.pair_of(i)]));
  ASSERT_LT(static_cast<int64_t>(longest), 40);
  EXPECT_EQ(cut.inputs.input_ids.size(1), static_cast<int64_t>(longest));
  for (const auto& t : {cut.targets, cut.inputs.position_ids, cut.inputs.segment_ids})
    EXPECT_EQ(t.sizes(), cut.inputs.input_ids.sizes());
  EXPECT_TRUE(torch::equal(cut.targets, full.targets.narrow(1, 0, cut.targets.size(1))));

  TrainBatch four = full;
  trim_trailing_padding(four, 4);
  EXPECT_EQ(four.inputs.input_ids.size(1), static_cast<int64_t>((longest + 3) / 4 * 4));

  torch::manual_seed(3);
  CausalLM model(cfg);
  model->eval();
  torch::NoGradGuard ng;
  PackedSequences pf(full.inputs.position_ids, full.inputs.segment_ids);
  PackedSequences pc(cut.inputs.position_ids, cut.inputs.segment_ids);
  auto a = model->forward_train(full.inputs.input_ids, &pf).logits;
  auto b = model->forward_train(cut.inputs.input_ids, &pc).logits;
  auto used = (cut.inputs.segment_ids != 0).unsqueeze(-1);
  auto a_cut = a.narrow(1, 0, b.size(1));
  EXPECT_TRUE(torch::allclose(a_cut.masked_fill(~used, 0), b.masked_fill(~used, 0), 1e-5, 1e-6));

  // Rows without segments (pretraining samples) are left alone.
  TrainBatch plain;
  plain.inputs.input_ids = torch::zeros({2, 8}, torch::kLong);
  plain.targets = torch::zeros({2, 8}, torch::kLong);
  trim_trailing_padding(plain);
  EXPECT_EQ(plain.inputs.input_ids.size(1), 8);
}

TEST(PreferenceRows, GroupByLengthSortsWithinGroupsOfEachEpoch) {
  auto all = pairs(20);
  PreferenceRowOptions o;
  o.seq_len = 40;
  o.num_rows = 40;  // two epochs
  o.group_rows = 5;
  PreferenceRows grouped(all, o);
  o.group_rows = 0;
  PreferenceRows plain(all, o);
  ASSERT_EQ(grouped.num_samples(), 40);
  for (int e = 0; e < 2; ++e) {
    std::set<int32_t> seen, seen_plain;
    for (int g = 0; g < 4; ++g) {
      std::multiset<int32_t> a, b;
      for (int i = 0; i < 5; ++i) {
        const int64_t r = e * 20 + g * 5 + i;
        a.insert(grouped.pair_of(r));
        b.insert(plain.pair_of(r));
        if (i > 0)
          EXPECT_GE(length((*all)[grouped.pair_of(r - 1)]), length((*all)[grouped.pair_of(r)]));
        seen.insert(grouped.pair_of(r));
      }
      EXPECT_EQ(a, b);  // the same pairs as the shuffled order's group, sorted
    }
    EXPECT_EQ(seen.size(), 20u);  // each epoch is every pair once
  }
  EXPECT_NE(grouped.fingerprint(), plain.fingerprint());
}

}  // namespace
}  // namespace reef
