// SFT rows (data/sft_dataset.h) on hand-made samples whose tokens say where they come from
// (sample k's tokens are 100*k + position), so every expectation is computed from the samples
// themselves: what packing puts in a row, the positions restarting per sample, the segments, the
// target mask that follows the samples' masks and never crosses into the next sample, padding,
// the overlong policies, epochs, and what the fingerprint depends on.
#include "reef/data/sft_dataset.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "reef/base/error.h"

namespace reef {
namespace {

// Sample k: `len` tokens 100*k + t; supervised from `first_supervised` on.
SftSample make_sample(int k, int len, int first_supervised) {
  SftSample s;
  for (int t = 0; t < len; ++t) {
    s.input_ids.push_back(100 * k + t);
    s.loss_mask.push_back(t >= first_supervised ? 1 : 0);
  }
  s.source = "f.jsonl:" + std::to_string(k + 1);
  return s;
}

std::shared_ptr<std::vector<SftSample>> samples(const std::vector<std::pair<int, int>>& len_first) {
  auto v = std::make_shared<std::vector<SftSample>>();
  for (size_t k = 0; k < len_first.size(); ++k)
    v->push_back(make_sample(static_cast<int>(k), len_first[k].first, len_first[k].second));
  return v;
}

constexpr int32_t kPad = 7;

SftRowOptions options(int64_t seq_len, bool packing = true) {
  SftRowOptions o;
  o.seq_len = seq_len;
  o.packing = packing;
  o.pad_id = kPad;
  o.seed = 3;
  return o;
}

// Checks row i of `rows` token by token against the samples it says it holds.
void check_row(const SftRows& rows, const std::vector<SftSample>& all, int64_t i) {
  std::vector<int32_t> tokens;
  SampleLayout layout;
  rows.sample(i, &tokens);
  ASSERT_TRUE(rows.layout(i, &layout));
  const int64_t T = rows.seq_len();
  ASSERT_EQ(static_cast<int64_t>(tokens.size()), T + 1);
  ASSERT_EQ(static_cast<int64_t>(layout.target_mask.size()), T);
  // Expected per-token (T+1) sample index, position and mask.
  std::vector<int> owner;
  std::vector<int32_t> want_tokens, pos;
  std::vector<uint8_t> mask;
  for (int32_t k : rows.row(i)) {
    const SftSample& s = all[static_cast<size_t>(k)];
    for (size_t t = 0; t < s.input_ids.size() && static_cast<int64_t>(want_tokens.size()) < T + 1;
         ++t) {
      owner.push_back(k);
      want_tokens.push_back(s.input_ids[t]);
      pos.push_back(static_cast<int32_t>(t));
      mask.push_back(s.loss_mask[t]);
    }
  }
  ASSERT_LE(static_cast<int64_t>(want_tokens.size()), T + 1) << "row " << i << " overflows";
  for (int64_t t = 0; t <= T; ++t) {
    const bool pad = t >= static_cast<int64_t>(want_tokens.size());
    EXPECT_EQ(tokens[static_cast<size_t>(t)], pad ? kPad : want_tokens[static_cast<size_t>(t)])
        << "row " << i << " t " << t;
    if (t == T) break;
    const size_t u = static_cast<size_t>(t);
    if (!pad) EXPECT_EQ(layout.position_ids[u], pos[u]) << "row " << i << " t " << t;
    EXPECT_EQ(layout.segment_ids[u] == 0, pad);
    // Target t is token t+1: counted only inside one sample and where that sample supervises it.
    const bool same = !pad && u + 1 < owner.size() && owner[u + 1] == owner[u];
    EXPECT_EQ(layout.target_mask[u], same && mask[u + 1] ? 1 : 0) << "row " << i << " t " << t;
    if (!pad && t > 0) {
      const bool same_seg = layout.segment_ids[u] == layout.segment_ids[u - 1];
      EXPECT_EQ(same_seg, owner[u] == owner[u - 1]) << "row " << i << " t " << t;
    }
  }
}

TEST(SftRows, PacksSamplesWithTheirOwnPositionsMasksAndSegments) {
  auto all = samples({{5, 2}, {7, 3}, {4, 1}, {9, 4}, {3, 1}, {6, 2}, {8, 5}});
  SftRows rows(all, options(15));
  int64_t tokens = 0;
  std::set<int32_t> seen;
  for (int64_t i = 0; i < rows.num_samples(); ++i) {
    check_row(rows, *all, i);
    for (int32_t k : rows.row(i)) {
      EXPECT_TRUE(seen.insert(k).second) << "sample " << k << " twice in one epoch";
      tokens += static_cast<int64_t>((*all)[static_cast<size_t>(k)].input_ids.size());
    }
  }
  EXPECT_EQ(seen.size(), all->size());  // one epoch holds every sample once
  EXPECT_EQ(rows.stats().tokens, tokens);
  EXPECT_LT(rows.num_samples(), static_cast<int64_t>(all->size()));  // several per row
  // Supervised targets: each sample's mask bits after its first token.
  int64_t supervised = 0;
  for (const auto& s : *all)
    for (size_t t = 1; t < s.loss_mask.size(); ++t) supervised += s.loss_mask[t];
  EXPECT_EQ(rows.stats().supervised, supervised);
  int64_t counted = 0;
  SampleLayout l;
  for (int64_t i = 0; i < rows.num_samples(); ++i) {
    rows.layout(i, &l);
    for (auto m : l.target_mask) counted += m;
  }
  EXPECT_EQ(counted, supervised);  // every supervised target counted once, none across samples
}

TEST(SftRows, WithoutPackingEachSampleHasARow) {
  auto all = samples({{5, 2}, {7, 3}, {4, 1}});
  SftRows rows(all, options(10, /*packing=*/false));
  ASSERT_EQ(rows.num_samples(), 3);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rows.row(i).size(), 1u);
    check_row(rows, *all, i);
  }
}

TEST(SftRows, OverlongSamplesAreDroppedCutOrRefused) {
  auto all = samples({{5, 2}, {12, 3}, {12, 11}, {4, 1}});  // row = 9 tokens
  {
    SftRows rows(all, options(8));
    EXPECT_EQ(rows.stats().dropped, 2);
    std::set<int32_t> seen;
    for (int64_t i = 0; i < rows.num_samples(); ++i)
      for (int32_t k : rows.row(i)) seen.insert(k);
    EXPECT_EQ(seen, (std::set<int32_t>{0, 3}));
  }
  {
    auto o = options(8);
    o.overlong = "truncate";
    SftRows rows(all, o);
    // Sample 1 cut to 9 tokens keeps supervised tokens 3..8; sample 2 would keep none: dropped.
    EXPECT_EQ(rows.stats().truncated, 2);
    EXPECT_EQ(rows.stats().dropped, 1);
    for (int64_t i = 0; i < rows.num_samples(); ++i) check_row(rows, *all, i);
  }
  {
    auto o = options(8);
    o.overlong = "error";
    try {
      SftRows rows(all, o);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("f.jsonl:2"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("12 tokens"), std::string::npos) << e.what();
    }
  }
  // Nothing usable at all is an error, not an empty run.
  EXPECT_THROW(SftRows(samples({{20, 3}}), options(8)), Error);
}

TEST(SftRows, EpochsReshuffleAndDoNotDependOnHowManyAreAsked) {
  std::vector<std::pair<int, int>> spec;
  for (int k = 0; k < 20; ++k) spec.emplace_back(3 + k % 5, 1);
  auto all = samples(spec);
  SftRows one(all, options(12));
  auto o = options(12);
  o.num_rows = one.num_samples() * 3 + 1;
  SftRows more(all, o);
  ASSERT_GE(more.num_samples(), o.num_rows);
  for (int64_t i = 0; i < one.num_samples(); ++i) EXPECT_EQ(one.row(i), more.row(i));
  EXPECT_EQ(one.fingerprint(), more.fingerprint());
  // The second epoch is another order of the same samples.
  std::vector<int32_t> e0, e1;
  for (int64_t i = 0; i < one.num_samples(); ++i)
    for (int32_t k : more.row(i)) e0.push_back(k);
  for (int64_t i = one.num_samples(); i < 2 * one.num_samples() && i < more.num_samples(); ++i)
    for (int32_t k : more.row(i)) e1.push_back(k);
  EXPECT_NE(e0, std::vector<int32_t>(e1.begin(), e1.begin() + std::min(e0.size(), e1.size())));
  // The fingerprint follows every setting that changes rows, and the data.
  auto fp = [&](auto change) {
    auto x = options(12);
    change(x);
    return SftRows(all, x).fingerprint();
  };
  EXPECT_NE(one.fingerprint(), fp([](SftRowOptions& x) { x.seed = 4; }));
  EXPECT_NE(one.fingerprint(), fp([](SftRowOptions& x) { x.packing = false; }));
  EXPECT_NE(one.fingerprint(), fp([](SftRowOptions& x) { x.seq_len = 13; }));
  auto changed = std::make_shared<std::vector<SftSample>>(*all);
  (*changed)[4].loss_mask[2] ^= 1;
  EXPECT_NE(one.fingerprint(), SftRows(changed, options(12)).fingerprint());
}

}  // namespace
}  // namespace reef
