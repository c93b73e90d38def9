// Tests for checkpoint/slices.h and checkpoint/dist_checkpoint.h: box intersection, flat ranges
// as boxes (checked against brute-force enumeration), exact-cover checks, and distributed saves
// of synthetic layouts written "rank by rank" in one process: tensor-parallel splits along a
// dimension, pipeline stages owning whole tensors, ZeRO-1 flat slices, each read back whole
// and resharded into other layouts, reading only the files needed; incomplete or corrupted
// folders are refused naming the file or the tensor; a model loads from a distributed folder.
#include "reef/checkpoint/dist_checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/slices.h"
#include "testing/testing.h"

namespace reef {
namespace {

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no reef::Error thrown";
  return "";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

using Shape = std::vector<int64_t>;

TEST(Slices, BoxIntersection) {
  Box a{{0, 2}, {4, 4}}, b{{2, 0}, {4, 3}};
  auto i = intersect(a, b);
  ASSERT_TRUE(i.has_value());
  EXPECT_EQ(*i, (Box{{2, 2}, {2, 1}}));
  EXPECT_FALSE(intersect(Box{{0}, {3}}, Box{{3}, {2}}).has_value());  // touching is not overlapping
  EXPECT_FALSE(intersect(Box{{0, 0}, {2, 2}}, Box{{0, 2}, {2, 2}}).has_value());
  EXPECT_TRUE(intersect(Box{{}, {}}, Box{{}, {}}).has_value());  // scalars
}

TEST(Slices, FlatRangeOfAMatrixIsHeadRowsAndTail) {
  auto parts = slice_parts({4, 5}, TensorSlice::flat_range(3, 14));  // elements 3..16
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].box, (Box{{0, 3}, {1, 2}}));
  EXPECT_EQ(parts[0].at, 0);
  EXPECT_EQ(parts[1].box, (Box{{1, 0}, {2, 5}}));
  EXPECT_EQ(parts[1].at, 2);
  EXPECT_EQ(parts[2].box, (Box{{3, 0}, {1, 2}}));
  EXPECT_EQ(parts[2].at, 12);
  // Whole rows are one box; a range inside one row is one box.
  EXPECT_EQ(slice_parts({4, 5}, TensorSlice::flat_range(5, 10)).size(), 1u);
  EXPECT_EQ(slice_parts({4, 5}, TensorSlice::flat_range(6, 3))[0].box, (Box{{1, 1}, {1, 3}}));
  EXPECT_HAS(error_of([] { slice_parts({4, 5}, TensorSlice::flat_range(15, 6)); }), "flat[15:21]");
  EXPECT_HAS(error_of([] {
               slice_parts({4, 5}, TensorSlice::of_box({0, 3}, {4, 3}));
             }),
             "[0:4, 3:6]");
}

// Every flat range of random shapes: the boxes enumerate exactly the range's elements, in order.
TEST(Slices, FlatRangeBoxesMatchBruteForce) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    Shape shape;
    const int nd = 1 + static_cast<int>(rng() % 4);
    int64_t total = 1;
    for (int d = 0; d < nd; ++d) shape.push_back(1 + rng() % 5), total *= shape.back();
    const int64_t s = rng() % total, len = 1 + rng() % (total - s);
    auto parts = slice_parts(shape, TensorSlice::flat_range(s, len));
    EXPECT_LE(parts.size(), static_cast<size_t>(2 * nd - 1));
    std::vector<int64_t> seen;
    int64_t at = 0;
    for (const auto& p : parts) {
      EXPECT_EQ(p.at, at);
      at += p.box.numel();
      // Row-major enumeration of the box's elements as flat indices of the tensor.
      std::vector<int64_t> idx(p.box.offsets);
      for (int64_t k = 0; k < p.box.numel(); ++k) {
        int64_t flat = 0;
        for (int d = 0; d < nd; ++d) flat = flat * shape[d] + idx[d];
        seen.push_back(flat);
        for (int d = nd - 1; d >= 0; --d) {
          if (++idx[d] < p.box.offsets[d] + p.box.lengths[d]) break;
          idx[d] = p.box.offsets[d];
        }
      }
    }
    ASSERT_EQ(static_cast<int64_t>(seen.size()), len);
    for (int64_t k = 0; k < len; ++k) ASSERT_EQ(seen[k], s + k) << "trial " << trial;
  }
}

TEST(Slices, CoverChecks) {
  const Shape shape{4, 6};
  EXPECT_EQ(
      check_cover(shape, {TensorSlice::of_box({0, 0}, {2, 6}), TensorSlice::flat_range(12, 12)}),
      "");
  EXPECT_EQ(check_cover(shape, {TensorSlice::whole(shape)}), "");
  EXPECT_EQ(check_cover(shape, {TensorSlice::of_box({0, 0}, {4, 3}), TensorSlice::flat_range(3, 3),
                                TensorSlice::flat_range(9, 3), TensorSlice::flat_range(15, 3),
                                TensorSlice::flat_range(21, 3)}),
            "");
  EXPECT_EQ(
      check_cover(shape, {TensorSlice::of_box({0, 0}, {2, 6}), TensorSlice::flat_range(11, 13)}),
      "pieces [0:2, 0:6] and flat[11:24] overlap");
  EXPECT_EQ(check_cover(shape, {TensorSlice::of_box({0, 0}, {2, 6})}),
            "the pieces cover 12 of its 24 elements");
  EXPECT_HAS(check_cover(shape, {TensorSlice::of_box({0, 0}, {5, 6})}),
             "does not lie inside shape [4, 6]");
  EXPECT_EQ(check_cover({}, {TensorSlice::whole({})}), "");  // a scalar
}

TEST(Slices, BalanceOwnersSpreadsBytes) {
  EXPECT_EQ(balance_owners({100, 10, 10, 50, 50}, 2), (std::vector<int>{0, 1, 1, 1, 1}));
  EXPECT_EQ(balance_owners({8, 8, 8, 8}, 2), (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(balance_owners({1, 2}, 1), (std::vector<int>{0, 0}));
}

// --- distributed saves of synthetic layouts, every "rank" written from this process ---

torch::Tensor arange(const Shape& shape, double base) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return (torch::arange(n, torch::kFloat) + base).view(shape);
}

// Tensors a [8, 6] tensor-parallel over 2 ranks along dim 0, b [4, 9] along dim 1 over 3
// ranks, c [5, 7] as ZeRO-1 flat slices of uneven lengths over 3 ranks, and whole tensors d
// (rank 0's stage) and e, a scalar (rank 2's stage).
struct Layout {
  torch::Tensor a = arange({8, 6}, 0), b = arange({4, 9}, 100), c = arange({5, 7}, 1000),
                d = arange({3}, -5), e = torch::tensor(42.0f);
  std::vector<std::vector<LocalPiece>> ranks{3};
  Layout() {
    for (int r = 0; r < 2; ++r)
      ranks[r].push_back(
          {"a", "model", {8, 6}, TensorSlice::of_box({4 * r, 0}, {4, 6}), a.narrow(0, 4 * r, 4)});
    for (int r = 0; r < 3; ++r)
      ranks[r].push_back(
          {"b", "model", {4, 9}, TensorSlice::of_box({0, 3 * r}, {4, 3}), b.narrow(1, 3 * r, 3)});
    const int64_t cuts[] = {0, 12, 13, 35};
    for (int r = 0; r < 3; ++r)
      ranks[r].push_back({"c",
                          "optimizer",
                          {5, 7},
                          TensorSlice::flat_range(cuts[r], cuts[r + 1] - cuts[r]),
                          c.view({-1}).narrow(0, cuts[r], cuts[r + 1] - cuts[r])});
    ranks[0].push_back({"d", "model", {3}, TensorSlice::whole({3}), d});
    ranks[2].push_back({"e", "model", {}, TensorSlice::whole({}), e});
  }
  void save(const std::string& dir) const {
    for (int r = 0; r < 3; ++r) EXPECT_EQ(write_rank_pieces(dir, r, ranks[r]), dist_rank_file(r));
    write_dist_index(dir, 3, {0, 1, 2});
  }
};

TEST(DistCheckpoint, SyntheticLayoutsRoundTripWhole) {
  testing::ScratchDir dir;
  Layout l;
  l.save(dir.path());
  EXPECT_TRUE(looks_distributed(dir.path()));
  auto ck = DistCheckpoint::open(dir.path());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(ck.names("optimizer"), (std::vector<std::string>{"c"}));
  EXPECT_EQ(ck.tensor("b").shape, (Shape{4, 9}));
  EXPECT_EQ(ck.tensor("b").pieces.size(), 3u);
  for (const auto& [name, want] : std::vector<std::pair<std::string, torch::Tensor>>{
           {"a", l.a}, {"b", l.b}, {"c", l.c}, {"d", l.d}, {"e", l.e}}) {
    auto got = ck.read(name, TensorSlice::whole(want.sizes().vec()));
    EXPECT_TRUE(torch::equal(got, want)) << name;
  }
  // The index lists every piece with its file, key and part.
  auto index = nlohmann::json::parse(read_file(dir / kDistIndexFile));
  EXPECT_EQ(index["world_size"], 3);
  EXPECT_EQ(index["tensors"]["c"]["pieces"][1]["flat"], nlohmann::json::array({12, 1}));
  EXPECT_EQ(index["tensors"]["b"]["pieces"][2]["offsets"], nlohmann::json::array({0, 6}));
  EXPECT_EQ(index["tensors"]["d"]["pieces"][0]["key"], "d");  // a whole piece keeps its name
  EXPECT_EQ(index["tensors"]["a"]["dtype"], "F32");
}

TEST(DistCheckpoint, ReshardsIntoOtherLayoutsReadingOnlyWhatIsNeeded) {
  testing::ScratchDir dir;
  Layout l;
  l.save(dir.path());
  {
    // a was split along dim 0; a new layout splits it along dim 1 (another TP degree).
    auto ck = DistCheckpoint::open(dir.path());
    auto part = ck.read("a", TensorSlice::of_box({0, 2}, {8, 2}));
    EXPECT_TRUE(torch::equal(part, l.a.narrow(1, 2, 2)));
    // b was split along dim 1 over 3; read rows 1..2 as flat slices (ZeRO over TP output).
    auto flat = ck.read("b", TensorSlice::flat_range(7, 20));
    EXPECT_TRUE(torch::equal(flat, l.b.view({-1}).narrow(0, 7, 20)));
    // c was flat; read a box of it.
    auto box = ck.read("c", TensorSlice::of_box({1, 2}, {3, 4}));
    EXPECT_TRUE(torch::equal(box, l.c.narrow(0, 1, 3).narrow(1, 2, 4)));
    // Into another dtype.
    auto out = torch::zeros({3}, torch::kDouble);
    ck.read_into("d", TensorSlice::whole({3}), out);
    EXPECT_TRUE(torch::equal(out, l.d.to(torch::kDouble)));
  }
  {
    // Rows 4..7 of a live in rank 1's file only; elements 13.. of c in rank 2's only.
    auto ck = DistCheckpoint::open(dir.path());
    EXPECT_TRUE(torch::equal(ck.read("a", TensorSlice::of_box({5, 1}, {2, 4})),
                             l.a.narrow(0, 5, 2).narrow(1, 1, 4)));
    EXPECT_EQ(ck.files_read(), (std::set<std::string>{dist_rank_file(1)}));
    ck.read("c", TensorSlice::flat_range(20, 10));
    EXPECT_EQ(ck.files_read(), (std::set<std::string>{dist_rank_file(1), dist_rank_file(2)}));
  }
}

TEST(DistCheckpoint, IncompleteOrCorruptFoldersAreRefusedNamingTheFile) {
  testing::ScratchDir dir;
  Layout l;
  const std::string d = dir.path();
  for (int r = 0; r < 3; ++r) write_rank_pieces(d, r, l.ranks[r]);
  // Pieces written, index not yet (an interrupted save).
  EXPECT_EQ(error_of([&] { DistCheckpoint::open(d); }),
            "incomplete checkpoint " + d +
                ": dist_checkpoint.json is missing (the save was interrupted?)");
  write_dist_index(d, 3, {0, 1, 2});
  const std::string f1 = d + "/" + dist_rank_file(1), saved = read_file(f1);
  std::filesystem::remove(f1);
  EXPECT_EQ(error_of([&] { DistCheckpoint::open(d); }),
            "incomplete checkpoint " + d + ": rank-00001.safetensors is missing");
  write_file_atomic(f1, saved.substr(0, saved.size() - 10));
  EXPECT_HAS(error_of([&] { DistCheckpoint::open(d); }),
             "corrupted checkpoint " + d + ": rank-00001.safetensors is " +
                 std::to_string(saved.size() - 10) + " bytes, expected " +
                 std::to_string(saved.size()) + " (truncated?)");
  // A flipped byte in the data: found when the file is first read, naming it.
  std::string flipped = saved;
  flipped[flipped.size() - 1] ^= 1;
  write_file_atomic(f1, flipped);
  auto ck = DistCheckpoint::open(d);
  EXPECT_TRUE(torch::equal(ck.read("d", TensorSlice::whole({3})), l.d));  // rank 0's file is fine
  EXPECT_HAS(error_of([&] { ck.read("a", TensorSlice::whole({8, 6})); }), "rank-00001.safetensors");
  write_file_atomic(f1, saved);
  EXPECT_TRUE(torch::equal(DistCheckpoint::open(d).read("a", TensorSlice::whole({8, 6})), l.a));
}

TEST(DistCheckpoint, PiecesThatDoNotCoverATensorAreRefusedNamingIt) {
  testing::ScratchDir dir;
  Layout l;
  const std::string d = dir.path();
  // Rank 1 wrote nothing: a's rows 4..7 and b's middle columns have no piece.
  write_rank_pieces(d, 0, l.ranks[0]);
  write_rank_pieces(d, 2, l.ranks[2]);
  EXPECT_EQ(error_of([&] {
              write_dist_index(d, 3, {0, 2});
            }),
            "distributed checkpoint " + d + ": tensor 'a': the pieces cover 24 of its 48 elements");
  // An index edited to drop a piece is refused at load, naming the tensor.
  testing::ScratchDir dir2;
  l.save(dir2.path());
  auto index = nlohmann::json::parse(read_file(dir2 / kDistIndexFile));
  index["tensors"]["c"]["pieces"].erase(1);
  write_file_atomic(dir2 / kDistIndexFile, index.dump());
  EXPECT_EQ(error_of([&] { DistCheckpoint::open(dir2.path()); }),
            "incomplete checkpoint " + dir2.path() +
                ": tensor 'c': the pieces cover 34 of its 35 elements");
  // Overlapping pieces are refused at save.
  testing::ScratchDir dir3;
  write_rank_pieces(dir3.path(), 0,
                    {{"x", "model", {4}, TensorSlice::flat_range(0, 3), torch::zeros({3})}});
  write_rank_pieces(dir3.path(), 1,
                    {{"x", "model", {4}, TensorSlice::flat_range(2, 2), torch::zeros({2})}});
  EXPECT_HAS(error_of([&] {
               write_dist_index(dir3.path(), 2, {0, 1});
             }),
             "tensor 'x': pieces flat[0:3] and flat[2:4] overlap");
  // A piece whose data does not match its slice is refused before anything is written.
  EXPECT_HAS(
      error_of([&] {
        write_rank_pieces(
            dir3.path(), 2,
            {{"y", "model", {4, 4}, TensorSlice::of_box({0, 0}, {2, 4}), torch::zeros({4, 2})}});
      }),
      "piece [0:2, 0:4] of 'y': its data has shape [4, 2], expected [2, 4]");
}

ModelConfig tiny_model_config() {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 64;
  c.hidden_size = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.max_seq_len = 32;
  return c;
}

// A model's parameters split over two "ranks" (the first half of every matrix's rows on one,
// the rest on the other) load into a model through load_model_weights like any model folder.
TEST(DistCheckpoint, ModelLoadsFromADistributedFolder) {
  testing::ScratchDir dir;
  torch::manual_seed(3);
  CausalLM src(tiny_model_config());
  std::vector<LocalPiece> r0, r1;
  for (const auto& item : src->named_parameters(true)) {
    auto t = item.value().detach();
    const auto shape = t.sizes().vec();
    if (t.dim() == 2) {
      const int64_t h = shape[0] / 2;
      r0.push_back({item.key(), "model", shape, TensorSlice::of_box({0, 0}, {h, shape[1]}),
                    t.narrow(0, 0, h)});
      r1.push_back({item.key(), "model", shape,
                    TensorSlice::of_box({h, 0}, {shape[0] - h, shape[1]}),
                    t.narrow(0, h, shape[0] - h)});
    } else {
      r1.push_back({item.key(), "model", shape, TensorSlice::whole(shape), t});
    }
  }
  write_rank_pieces(dir.path(), 0, r0);
  write_rank_pieces(dir.path(), 1, r1);
  write_dist_index(dir.path(), 2, {0, 1});
  torch::manual_seed(4);
  CausalLM dst(tiny_model_config());
  load_model_weights(dst, dir.path());
  auto pa = src->named_parameters(true), pb = dst->named_parameters(true);
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  // A tensor of the model missing from the checkpoint is named.
  testing::ScratchDir partial;
  std::vector<LocalPiece> norms;
  for (const auto& piece : r1)
    if (piece.global_shape.size() == 1) norms.push_back(piece);
  write_rank_pieces(partial.path(), 0, norms);
  write_dist_index(partial.path(), 1, {0});
  EXPECT_HAS(error_of([&] { load_model_weights(dst, partial.path()); }),
             "missing tensor 'model.embed_tokens.weight'");
}

}  // namespace
}  // namespace reef
