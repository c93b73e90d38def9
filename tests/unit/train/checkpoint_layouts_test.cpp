// Checkpoint folders written by the reef before the training core had one checkpointer
// (tests/data/checkpoints/, made by make_fixtures.sh there: the same two-step run in each layout
// that code wrote) still load with train/checkpointer.h, into one process and resharded at dp=2
// with ZeRO-1 and at tp=2: the weights and Adam moments equal the one-process folder's.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "../parallel/run_ranks.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"
#include "reef/models/hf_config.h"
#include "reef/train/checkpointer.h"
#include "testing/testing.h"

namespace reef {
namespace {

const char* kLayouts[] = {"consolidated",    "dp2_distributed", "dp2_zero1_distributed",
                          "tp2_distributed", "pp2_distributed", "zero3_distributed",
                          "pp2_consolidated"};

std::string fixture(const std::string& layout) {
  return join_path(testing::source_dir(), "tests/data/checkpoints/" + layout);
}

Config fixture_config(int dp, int tp, int zero) {
  Config cfg;
  cfg.model = model_config_from_hf(
      read_json_file(join_path(fixture("consolidated"), "config.json")), "config.json");
  cfg.parallel.dp = dp;
  cfg.parallel.tp = tp;
  cfg.parallel.zero = zero;
  return cfg;
}

// The named weights and moments of a strategy's model after loading `layout` (whole tensors,
// gathered over the group when sharded), and the trainer state.
struct Loaded {
  std::map<std::string, torch::Tensor> tensors;
  TrainerState state;
};

Loaded load(const std::string& layout, const Config& cfg, std::shared_ptr<ProcessGroup> pg) {
  torch::manual_seed(11);  // other weights than the checkpoint's
  auto strategy = parallelize(CausalLM(cfg.model), cfg, pg);
  ByteTokenizer tok;
  Loaded out;
  out.state = Checkpointer(cfg, *strategy, tok).load(fixture(layout));
  Consolidated c = strategy->consolidate(/*with_optimizer=*/true);
  if (c.model) {
    for (const auto& item : c.model->named_parameters())
      out.tensors[item.key()] = item.value().clone();
    for (const auto& [name, t] : c.optimizer_state) out.tensors[name] = t.clone();
  }
  if (c.release) c.release();
  return out;
}

void expect_same(const Loaded& got, const Loaded& want, const std::string& what) {
  EXPECT_EQ(got.state.step, 2) << what;
  EXPECT_EQ(got.state.consumed_samples, want.state.consumed_samples) << what;
  EXPECT_EQ(got.state.data_fingerprint, want.state.data_fingerprint) << what;
  ASSERT_EQ(got.tensors.size(), want.tensors.size()) << what;
  for (const auto& [name, t] : want.tensors) {
    ASSERT_TRUE(got.tensors.count(name)) << what << ": " << name;
    EXPECT_TRUE(torch::allclose(got.tensors.at(name), t, 1e-5, 1e-6)) << what << ": " << name;
  }
}

TEST(CheckpointLayouts, EveryOldLayoutLoadsInOneProcess) {
  const Loaded want = load("consolidated", fixture_config(1, 1, 0), nullptr);
  // Every weight came with both Adam moments (a checkpoint after two optimizer steps).
  size_t moments = 0;
  for (const auto& [name, t] : want.tensors) moments += name.find(".exp_avg") != std::string::npos;
  ASSERT_GT(want.tensors.size(), 0u);
  ASSERT_EQ(moments, 2 * (want.tensors.size() - moments));
  ASSERT_GT(want.tensors.count("model.layers.1.mlp.down_proj.weight.exp_avg_sq"), 0u);
  for (const char* layout : kLayouts)
    expect_same(load(layout, fixture_config(1, 1, 0), nullptr), want, layout);
}

TEST(CheckpointLayouts, EveryOldLayoutReshardsToZeroOneAndTensorParallel) {
  const Loaded want = load("consolidated", fixture_config(1, 1, 0), nullptr);
  for (const auto& [dp, tp, zero] : {std::tuple{2, 1, 1}, std::tuple{1, 2, 0}})
    for (const char* layout : kLayouts) {
      const Config cfg = fixture_config(dp, tp, zero);
      testing::run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
        Loaded got = load(layout, cfg, pg);
        if (pg->rank() == 0)
          expect_same(got, want, fmt::format("{} at dp={} tp={} zero={}", layout, dp, tp, zero));
      });
    }
}

}  // namespace
}  // namespace reef
