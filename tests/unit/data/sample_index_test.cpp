// Tests for data/sample_index.h and data/blend.h: samples are exact windows over the shuffled
// concatenation of the split's documents, deterministic by seed, cached and rebuilt when an
// input changes, splits are disjoint, and blends follow their weights to within one sample.
#include "reef/data/sample_index.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/data/blend.h"
#include "testing/testing.h"

namespace reef {
namespace {

// n_docs documents of varied lengths (some empty); every token is unique: first + counter.
void write_dataset(const std::string& prefix, int n_docs, int32_t first = 1, int salt = 0) {
  IndexedDatasetWriter w(prefix, TokenDType::kUInt16);
  int32_t next = first;
  for (int d = 0; d < n_docs; ++d) {
    const int len = (d * 7 + salt) % 23 == 5 ? 0 : 1 + (d * 13 + salt) % 29;
    std::vector<int32_t> doc;
    for (int k = 0; k < len; ++k) doc.push_back(next++);
    w.add_document(doc);
  }
  w.finalize();
}

std::vector<int32_t> stream_of(const GptDataset& g) {
  std::vector<int32_t> s;
  for (int64_t d : g.document_order()) g.data().document(d).append_to(&s);
  return s;
}

GptIndexOptions options(int64_t seq_len, uint64_t seed = 7, int64_t num_samples = 0) {
  GptIndexOptions o;
  o.seq_len = seq_len;
  o.seed = seed;
  o.num_samples = num_samples;
  o.split = "8,1,1";
  return o;
}

TEST(SampleIndex, ParseSplitAndBoundariesFollowMegatron) {
  auto w = parse_split("969,30,1");
  EXPECT_NEAR(w[0], 0.969, 1e-12);
  EXPECT_EQ(split_boundaries(w, 1000), (std::array<int64_t, 4>{0, 969, 999, 1000}));
  EXPECT_EQ(split_boundaries(parse_split("1"), 17), (std::array<int64_t, 4>{0, 17, 17, 17}));
  EXPECT_EQ(split_boundaries(parse_split("0.9, 0.1"), 10), (std::array<int64_t, 4>{0, 9, 10, 10}));
  EXPECT_EQ(split_boundaries(parse_split("1,1,1"), 10), (std::array<int64_t, 4>{0, 3, 7, 10}));
  for (const char* bad : {"", "a,b", "1,2,3,4", "-1,2", "0,0"})
    EXPECT_THROW(parse_split(bad), Error) << bad;
}

TEST(SampleIndex, EveryTokenOfTheTrainingDocumentsLandsInTheExpectedSamples) {
  testing::ScratchDir dir;
  write_dataset(dir / "ds", 60);
  GptDataset g(dir / "ds", options(16));
  const auto& ds = g.data();
  EXPECT_EQ(g.document_begin(), 0);
  EXPECT_EQ(g.document_end(), 48);
  // One epoch: the order is a permutation of the training documents, and shuffled.
  auto order = g.document_order();
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> want(48);
  for (int i = 0; i < 48; ++i) want[i] = i;
  EXPECT_EQ(sorted, want);
  EXPECT_NE(order, want);

  const auto stream = stream_of(g);
  int64_t train_tokens = 0;
  for (int d = 0; d < 48; ++d) train_tokens += ds.document_length(d);
  ASSERT_EQ(static_cast<int64_t>(stream.size()), train_tokens);
  const int64_t L = 16, n = g.num_samples();
  EXPECT_EQ(n, (train_tokens - 1) / L);
  // Sample i is stream[j*L, j*L+L] for j = unshuffled_index(i); the j form a permutation, so
  // each stream token t lands in sample t/L (and also (t-1)/L when t is a window boundary).
  std::vector<int> seen(static_cast<size_t>(n), 0);
  std::map<int32_t, int> covered;
  std::vector<int32_t> s;
  bool shuffled = false;
  for (int64_t i = 0; i < n; ++i) {
    g.sample(i, &s);
    const int64_t j = g.unshuffled_index(i);
    shuffled |= j != i;
    ASSERT_EQ(static_cast<int64_t>(s.size()), L + 1);
    ASSERT_TRUE(std::equal(s.begin(), s.end(), stream.begin() + j * L)) << "sample " << i;
    seen[j]++;
    for (int32_t t : s) covered[t]++;
  }
  EXPECT_TRUE(shuffled);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), n);
  for (int64_t t = 0; t < static_cast<int64_t>(stream.size()); ++t) {
    const int expect = t > n * L ? 0 : (t % L == 0 && t > 0 && t < n * L) ? 2 : 1;
    ASSERT_EQ(covered.count(stream[t]) ? covered[stream[t]] : 0, expect) << "stream token " << t;
  }
  EXPECT_THROW(g.sample(n, &s), Error);
}

TEST(SampleIndex, MoreSamplesThanOneEpochRepeatsReshuffledEpochs) {
  testing::ScratchDir dir;
  write_dataset(dir / "ds", 30);
  GptDataset one(dir / "ds", options(8));
  const int64_t want = one.num_samples() * 3 + 5;
  GptDataset g(dir / "ds", options(8, 7, want));
  EXPECT_EQ(g.num_samples(), want);
  EXPECT_EQ(g.num_epochs(), 4);
  const auto order = g.document_order();
  const int64_t nd = g.document_end() - g.document_begin();
  ASSERT_EQ(static_cast<int64_t>(order.size()), 4 * nd);
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 4; ++e) {
    std::vector<int64_t> ep(order.begin() + e * nd, order.begin() + (e + 1) * nd);
    epochs.push_back(ep);
    std::sort(ep.begin(), ep.end());
    for (int64_t d = 0; d < nd; ++d) EXPECT_EQ(ep[d], d);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  const auto stream = stream_of(g);
  std::vector<int32_t> s;
  for (int64_t i = 0; i < g.num_samples(); ++i) {
    g.sample(i, &s);
    const int64_t j = g.unshuffled_index(i);
    ASSERT_TRUE(std::equal(s.begin(), s.end(), stream.begin() + j * 8));
  }
}

TEST(SampleIndex, SampleIIsTheSameWhateverTheNumberOfSamples) {
  // What resuming with a larger train.max_steps relies on: a longer index starts with the
  // shorter one, and both report the same fingerprint.
  testing::ScratchDir dir;
  write_dataset(dir / "ds", 30);
  GptDataset one(dir / "ds", options(8, 7));
  const int64_t n1 = one.num_samples() + 3, n2 = one.num_samples() * 4 + 1;
  GptDataset a(dir / "ds", options(8, 7, n1)), b(dir / "ds", options(8, 7, n2));
  ASSERT_EQ(a.num_samples(), n1);
  ASSERT_EQ(b.num_samples(), n2);
  EXPECT_NE(a.cache_path(), b.cache_path());
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  std::vector<int32_t> sa, sb;
  for (int64_t i = 0; i < n1; ++i) {
    a.sample(i, &sa);
    b.sample(i, &sb);
    ASSERT_EQ(sa, sb) << "sample " << i;
  }
  EXPECT_NE(a.fingerprint(), GptDataset(dir / "ds", options(8, 8, n1)).fingerprint());
  EXPECT_NE(a.fingerprint(), GptDataset(dir / "ds", options(9, 7, n1)).fingerprint());
  // Weighted blends too.
  write_dataset(dir / "other", 25, 30000);
  auto ba = open_gpt_samples({"0.6", dir / "ds", "0.4", dir / "other"}, options(8, 7, 50));
  auto bb = open_gpt_samples({"0.6", dir / "ds", "0.4", dir / "other"}, options(8, 7, 170));
  EXPECT_EQ(ba->fingerprint(), bb->fingerprint());
  for (int64_t i = 0; i < 50; ++i) {
    ba->sample(i, &sa);
    bb->sample(i, &sb);
    ASSERT_EQ(sa, sb) << "blend sample " << i;
  }
  auto bc = open_gpt_samples({"0.5", dir / "ds", "0.5", dir / "other"}, options(8, 7, 50));
  EXPECT_NE(ba->fingerprint(), bc->fingerprint());
}

// megatron-core's build_sample_idx and GPTDataset's window query over our document order give
// the same token windows as our unshuffled samples.
constexpr const char* kMegatronSampleIdx = R"PY(
import json, sys, warnings
warnings.filterwarnings("ignore")
try:
    import numpy as np
    from megatron.core.datasets import helpers
    from megatron.core.datasets.indexed_dataset import IndexedDataset
except Exception as e:
    print("SKIP", e); sys.exit(0)
prefix, seq_len, cases = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
ds = IndexedDataset(prefix)
sizes = ds.sequence_lengths
out = []
for epochs, order in cases:
    order = np.array(order, dtype=np.int32)
    tokens_per_epoch = int(sizes[order[: len(order) // epochs]].sum())
    idx = helpers.build_sample_idx(sizes, order, seq_len, epochs, tokens_per_epoch, True, True)
    windows = []
    for j in range(len(idx) - 1):
        (df, of), (dl, ol) = idx[j], idx[j + 1]
        if df == dl:
            parts = [ds.get(order[df], offset=of, length=ol - of + 1)]
        else:
            parts = [ds.get(order[df], offset=of)] + [ds.get(order[i]) for i in range(df + 1, dl)]
            parts.append(ds.get(order[dl], length=ol + 1))
        windows.append(np.concatenate(parts).tolist())
    out.append(windows)
print("RESULT " + json.dumps(out))
)PY";

TEST(SampleIndex, WindowsMatchMegatronCoreBuildSampleIdx) {
  testing::ScratchDir dir;
  write_dataset(dir / "ds", 40);
  // One epoch, and several epochs.
  GptDataset one(dir / "ds", options(9, 3, 0)), many(dir / "ds", options(9, 3, 150));
  ASSERT_GT(many.num_epochs(), 1);
  nlohmann::json cases = nlohmann::json::array();
  for (const GptDataset* g : {&one, &many})
    cases.push_back(nlohmann::json::array({g->num_epochs(), g->document_order()}));
  auto r = testing::run_python({"-c", kMegatronSampleIdx, dir / "ds", "9", cases.dump()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.rfind("RESULT ");
  if (at == std::string::npos) GTEST_SKIP() << "megatron-core does not import: " << r.output;
  auto all = nlohmann::json::parse(r.output.substr(at + 7));
  for (int k = 0; k < 2; ++k) {
    const GptDataset& g = k == 0 ? one : many;
    const auto& windows = all[k];
    // Megatron builds every whole window of the epochs; we build the first num_samples.
    ASSERT_GE(static_cast<int64_t>(windows.size()), g.num_samples());
    if (k == 0) EXPECT_EQ(static_cast<int64_t>(windows.size()), g.num_samples());
    std::vector<int32_t> s;
    for (int64_t i = 0; i < g.num_samples(); ++i) {
      g.sample(i, &s);
      ASSERT_EQ(s, windows[g.unshuffled_index(i)].get<std::vector<int32_t>>()) << "sample " << i;
    }
  }
}

TEST(SampleIndex, DeterministicBySeed) {
  testing::ScratchDir dir;
  write_dataset(dir / "ds", 50);
  auto samples = [&](uint64_t seed, const std::string& cache) {
    GptIndexOptions o = options(12, seed, 100);
    o.cache_dir = dir / cache;
    GptDataset g(dir / "ds", o);
    EXPECT_FALSE(g.loaded_from_cache());
    std::vector<std::vector<int32_t>> all(100);
    for (int i = 0; i < 100; ++i) g.sample(i, &all[i]);
    return all;
  };
  const auto a = samples(1, "c1"), b = samples(1, "c2"), c = samples(2, "c3");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(SampleIndex, CacheIsReusedAndRebuiltWhenAnInputChanges) {
  testing::ScratchDir dir;
  write_dataset(dir / "ds", 40);
  std::string path;
  std::vector<int32_t> first, again;
  {
    GptDataset g(dir / "ds", options(10));
    EXPECT_FALSE(g.loaded_from_cache());
    path = g.cache_path();
    EXPECT_EQ(path.rfind(dir / "ds.", 0), 0u) << path;
    EXPECT_TRUE(path_exists(path));
    g.sample(3, &first);
  }
  {
    GptDataset g(dir / "ds", options(10));
    EXPECT_TRUE(g.loaded_from_cache());
    EXPECT_EQ(g.cache_path(), path);
    g.sample(3, &again);
    EXPECT_EQ(again, first);
  }
  for (const auto& o : {options(11), options(10, 8), options(10, 7, 50)}) {
    GptDataset g(dir / "ds", o);
    EXPECT_FALSE(g.loaded_from_cache());
    EXPECT_NE(g.cache_path(), path);
  }
  GptIndexOptions valid = options(10);
  valid.which = Split::kValid;
  EXPECT_NE(GptDataset(dir / "ds", valid).cache_path(), path);
  // New data under the same prefix: new key, new index.
  write_dataset(dir / "ds", 40, 1, 3);
  {
    GptDataset g(dir / "ds", options(10));
    EXPECT_FALSE(g.loaded_from_cache());
    EXPECT_NE(g.cache_path(), path);
    const auto stream = stream_of(g);
    g.sample(0, &again);
    EXPECT_TRUE(
        std::equal(again.begin(), again.end(), stream.begin() + g.unshuffled_index(0) * 10));
    path = g.cache_path();
  }
  // A truncated cache file is rebuilt, not trusted.
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);
  GptDataset g(dir / "ds", options(10));
  EXPECT_FALSE(g.loaded_from_cache());
  EXPECT_GT(g.num_samples(), 0);
  EXPECT_TRUE(GptDataset(dir / "ds", options(10)).loaded_from_cache());
}

TEST(SampleIndex, SplitsAreDisjoint) {
  testing::ScratchDir dir;
  write_dataset(dir / "ds", 100);
  std::vector<std::set<int32_t>> tokens(3);
  int64_t end = 0;
  for (int k = 0; k < 3; ++k) {
    GptIndexOptions o = options(4);
    o.which = static_cast<Split>(k);
    GptDataset g(dir / "ds", o);
    EXPECT_EQ(g.document_begin(), end);
    end = g.document_end();
    std::set<int32_t> allowed;
    for (int64_t d = g.document_begin(); d < g.document_end(); ++d) {
      std::vector<int32_t> t;
      g.data().document(d).append_to(&t);
      allowed.insert(t.begin(), t.end());
    }
    std::vector<int32_t> s;
    for (int64_t i = 0; i < g.num_samples(); ++i) {
      g.sample(i, &s);
      for (int32_t t : s) {
        ASSERT_TRUE(allowed.count(t)) << split_name(o.which) << " token " << t;
        tokens[k].insert(t);
      }
    }
    EXPECT_FALSE(tokens[k].empty());
  }
  EXPECT_EQ(end, 100);
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      for (int32_t t : tokens[a]) ASSERT_FALSE(tokens[b].count(t));
}

TEST(SampleIndex, TooFewTokensIsAUsageError) {
  testing::ScratchDir dir;
  IndexedDatasetWriter w(dir / "tiny", TokenDType::kUInt16);
  w.add_document({1, 2, 3});
  w.finalize();
  GptIndexOptions o = options(2);
  o.split = "1";
  EXPECT_EQ(GptDataset(dir / "tiny", o).num_samples(), 1);  // 3 tokens: one window of 2+1
  o.seq_len = 3;
  try {
    GptDataset g(dir / "tiny", o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("tiny"), std::string::npos);
  }
}

TEST(Blend, GreedyIndexStaysWithinOneSampleOfWeights) {
  const std::vector<double> w{0.5, 0.3, 0.15, 0.05};
  std::vector<int32_t> di;
  std::vector<int64_t> dsi;
  build_blending_indices(w, 1000, &di, &dsi);
  std::vector<int64_t> count(4, 0);
  for (int64_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(dsi[i], count[di[i]]);  // each dataset's samples are drawn in order
    count[di[i]]++;
    for (int d = 0; d < 4; ++d) ASSERT_LE(std::abs(count[d] - w[d] * (i + 1)), 1.0) << i;
  }
  EXPECT_EQ(count, (std::vector<int64_t>{500, 300, 150, 50}));
  // Megatron's first picks, worked by hand: errors w*max(i,1) - count, ties to the lowest.
  EXPECT_EQ(std::vector<int32_t>(di.begin(), di.begin() + 4), (std::vector<int32_t>{0, 1, 2, 0}));
}

TEST(Blend, ParseBlendSpec) {
  auto b = parse_blend({"0.3", "a", "0.7", "b"});
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1].prefix, "b");
  EXPECT_DOUBLE_EQ(b[1].weight, 0.7);
  EXPECT_LT(parse_blend({"a", "b"})[0].weight, 0);
  EXPECT_THROW(parse_blend({}), Error);
  EXPECT_THROW(parse_blend({"0.3", "a", "0.7"}), Error);
  EXPECT_THROW(parse_blend({"0.3", "0.4"}), Error);
  EXPECT_THROW(parse_blend({"a", "0.4"}), Error);
  EXPECT_THROW(parse_blend({"-1", "a"}), Error);
}

TEST(Blend, WeightedBlendDrawsFromEachDatasetByWeight) {
  testing::ScratchDir dir;
  write_dataset(dir / "a", 40, 1);
  write_dataset(dir / "b", 40, 30000);
  GptIndexOptions o = options(8, 5, 400);
  auto src = open_gpt_samples({"0.7", dir / "a", "0.3", dir / "b"}, o);
  ASSERT_EQ(src->num_samples(), 400);
  EXPECT_EQ(src->seq_len(), 8);
  int from_a = 0;
  std::vector<int32_t> s;
  for (int64_t i = 0; i < 400; ++i) {
    src->sample(i, &s);
    ASSERT_EQ(s.size(), 9u);
    const bool a = s[0] < 30000;
    for (int32_t t : s) ASSERT_EQ(t < 30000, a);  // never mixes datasets
    from_a += a;
  }
  EXPECT_LE(std::abs(from_a - 280), 1);
  // The same samples as the member datasets give.
  auto* blend = dynamic_cast<BlendedGptDataset*>(src.get());
  ASSERT_NE(blend, nullptr);
  std::vector<int32_t> direct;
  src->sample(17, &s);
  blend->child(blend->dataset_index()[17]).sample(blend->dataset_sample_index()[17], &direct);
  EXPECT_EQ(s, direct);
  EXPECT_THROW(open_gpt_samples({"0.7", dir / "a", "0.3", dir / "b"}, options(8)), Error);
}

TEST(Blend, UnweightedBlendIsProportionalToSizeAndExhaustive) {
  testing::ScratchDir dir;
  write_dataset(dir / "a", 60, 1);
  write_dataset(dir / "b", 20, 30000);
  auto src = open_gpt_samples({dir / "a", dir / "b"}, options(8));
  auto* blend = dynamic_cast<BlendedGptDataset*>(src.get());
  ASSERT_NE(blend, nullptr);
  const int64_t na = blend->child(0).num_samples(), nb = blend->child(1).num_samples();
  EXPECT_EQ(src->num_samples(), na + nb);
  std::set<int64_t> a_used, b_used;
  for (int64_t i = 0; i < src->num_samples(); ++i)
    (blend->dataset_index()[i] == 0 ? a_used : b_used).insert(blend->dataset_sample_index()[i]);
  EXPECT_EQ(static_cast<int64_t>(a_used.size()), na);
  EXPECT_EQ(static_cast<int64_t>(b_used.size()), nb);
  // A single prefix is just that dataset.
  auto one = open_gpt_samples({dir / "a"}, options(8));
  EXPECT_EQ(dynamic_cast<GptDataset*>(one.get())->num_samples(), na);
}

// megatron-core's own blending helper and split cutting, when the package imports (CPU).
constexpr const char* kMegatronBlendAndSplit = R"PY(
import json, sys, warnings
warnings.filterwarnings("ignore")
try:
    import numpy as np
    from megatron.core.datasets import helpers
    from megatron.core.datasets.blended_megatron_dataset_config import (
        parse_and_normalize_split, convert_split_vector_to_split_matrix)
except Exception as e:
    print("SKIP", e); sys.exit(0)
out = {"blend": [], "split": []}
for w in ([0.5, 0.3, 0.15, 0.05], [0.7, 0.3], [1/3, 1/3, 1/3], [0.01, 0.99]):
    w = np.array(w, dtype=np.float64) / sum(w)
    di = np.zeros(997, dtype=np.int16); dsi = np.zeros(997, dtype=np.int64)
    helpers.build_blending_indices(di, dsi, w, len(w), 997, False)
    out["blend"].append(di.tolist())
for spec, n in (("969,30,1", 1000), ("1,1,1", 10), ("98,2", 57), ("8,1,1", 123)):
    m = convert_split_vector_to_split_matrix(parse_and_normalize_split(spec))
    cuts = [0] + [int(round(b[1] * float(n))) if b else None for b in m]
    out["split"].append(cuts)
print("RESULT " + json.dumps(out))
)PY";

TEST(Blend, MatchesMegatronCoreHelpers) {
  auto r = testing::run_python({"-c", kMegatronBlendAndSplit});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.rfind("RESULT ");
  if (at == std::string::npos) GTEST_SKIP() << "megatron-core does not import: " << r.output;
  auto j = nlohmann::json::parse(r.output.substr(at + 7));
  const std::vector<std::vector<double>> weights{
      {0.5, 0.3, 0.15, 0.05}, {0.7, 0.3}, {1.0 / 3, 1.0 / 3, 1.0 / 3}, {0.01, 0.99}};
  for (size_t k = 0; k < weights.size(); ++k) {
    std::vector<double> w = weights[k];
    double sum = 0;
    for (double v : w) sum += v;
    for (double& v : w) v /= sum;
    std::vector<int32_t> di;
    std::vector<int64_t> dsi;
    build_blending_indices(w, 997, &di, &dsi);
    EXPECT_EQ(di, j["blend"][k].get<std::vector<int32_t>>()) << "weights " << k;
  }
  const std::vector<std::pair<std::string, int64_t>> splits{
      {"969,30,1", 1000}, {"1,1,1", 10}, {"98,2", 57}, {"8,1,1", 123}};
  for (size_t k = 0; k < splits.size(); ++k) {
    const auto b = split_boundaries(parse_split(splits[k].first), splits[k].second);
    const auto& m = j["split"][k];
    for (int i = 0; i < 4; ++i)
      if (!m[i].is_null()) EXPECT_EQ(b[i], m[i].get<int64_t>()) << splits[k].first << " cut " << i;
  }
}

}  // namespace
}  // namespace reef
