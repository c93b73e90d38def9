// Tests for parallel/mesh.h: the mesh from parallel.* and the world size, each rank's share of
// the global batch, and gradient bucketing.
#include "reef/parallel/mesh.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "reef/base/error.h"

namespace reef {
namespace {

std::string usage_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    return e.what();
  }
  return "";
}

TEST(Mesh, DpDefaultsToTheWorldSize) {
  ParallelConfig p;
  EXPECT_EQ(resolve_mesh(p, 1).dp, 1);
  EXPECT_EQ(resolve_mesh(p, 4).dp, 4);
  p.dp = 2;
  p.zero = 1;
  Mesh m = resolve_mesh(p, 2);
  EXPECT_EQ(m.dp, 2);
  EXPECT_EQ(m.zero, 1);
}

TEST(Mesh, MismatchAndUnsupportedAreUsageErrors) {
  ParallelConfig p;
  p.dp = 2;
  EXPECT_NE(usage_message([&] {
              resolve_mesh(p, 4);
            }).find("parallel.dp=2 x tp=1 x pp=1 = 2 ranks, but the run has 4"),
            std::string::npos);
  p = ParallelConfig();
  p.tp = 2;  // dp x tp: dp from the world size
  Mesh m = resolve_mesh(p, 4);
  EXPECT_EQ(m.dp, 2);
  EXPECT_EQ(m.tp, 2);
  EXPECT_NE(usage_message([&] {
              resolve_mesh(p, 3);
            }).find("the world size 3 is not a multiple of parallel.tp=2"),
            std::string::npos);
  p = ParallelConfig();
  p.pp = 0;
  EXPECT_NE(usage_message([&] { resolve_mesh(p, 2); }).find("parallel.pp=0: expected 1"),
            std::string::npos);
  p.pp = 3;
  EXPECT_NE(usage_message([&] {
              resolve_mesh(p, 4);
            }).find("not a multiple of parallel.tp=1 x parallel.pp=3"),
            std::string::npos);
}

TEST(Mesh, PipelineStagesTakeTheirShareOfTheWorld) {
  ParallelConfig p;
  p.pp = 2;
  Mesh m = resolve_mesh(p, 4);
  EXPECT_EQ(m.dp, 2);
  EXPECT_EQ(m.pp, 2);
  EXPECT_EQ(resolve_mesh(p, 2).dp, 1);
}

TEST(BatchShard, SplitsAccumulationFirstThenMicroBatches) {
  BatchShard s = shard_global_batch(4, 4, 2, 1);  // 16 samples: 2 x 4 per rank
  EXPECT_EQ(s.micro_batch_size, 4);
  EXPECT_EQ(s.accum_steps, 2);
  EXPECT_EQ(s.first, 8);
  EXPECT_EQ(s.global_batch, 16);
  s = shard_global_batch(4, 1, 2, 1);  // 4 samples: 1 x 2 per rank
  EXPECT_EQ(s.micro_batch_size, 2);
  EXPECT_EQ(s.accum_steps, 1);
  EXPECT_EQ(s.first, 2);
  s = shard_global_batch(3, 5, 1, 0);  // one rank: the config as it is
  EXPECT_EQ(s.micro_batch_size, 3);
  EXPECT_EQ(s.accum_steps, 5);
  EXPECT_EQ(s.first, 0);
  EXPECT_NE(
      usage_message([] { shard_global_batch(3, 1, 2, 0); }).find("cannot be split evenly over 2"),
      std::string::npos);
}

TEST(BatchShard, RanksCoverTheGlobalBatchOnce) {
  for (int dp : {1, 2, 4}) {
    std::set<int64_t> seen;
    for (int r = 0; r < dp; ++r) {
      BatchShard s = shard_global_batch(4, 2, dp, r);
      for (int64_t m = 0; m < s.accum_steps; ++m)
        for (int64_t b = 0; b < s.micro_batch_size; ++b)
          EXPECT_TRUE(seen.insert(s.first + m * s.micro_batch_size + b).second);
    }
    EXPECT_EQ(seen.size(), 8u);
    EXPECT_EQ(*seen.rbegin(), 7);
  }
}

TEST(Buckets, ReverseOrderWithinTheSizeLimit) {
  std::vector<int64_t> bytes = {100, 100, 300, 50, 50, 1000, 10};
  auto b = plan_buckets(bytes, 200);
  // Reverse order: 6(10) 5(1000) | ... each bucket <= 200 unless a single large parameter.
  std::vector<size_t> order;
  for (const auto& bucket : b) {
    int64_t total = 0;
    for (size_t i : bucket) {
      order.push_back(i);
      total += bytes[i];
    }
    EXPECT_TRUE(total <= 200 || bucket.size() == 1) << total;
  }
  EXPECT_EQ(order, (std::vector<size_t>{6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(b.front(), (std::vector<size_t>{6}));
  EXPECT_EQ(b[1], (std::vector<size_t>{5}));
  EXPECT_EQ(b[2], (std::vector<size_t>{4, 3}));
  EXPECT_EQ(plan_buckets(bytes, 1 << 20).size(), 1u);
  EXPECT_TRUE(plan_buckets({}, 10).empty());
}

}  // namespace
}  // namespace reef
