// train.z_loss end to end: the z-loss term changes training, and it gives the same per-step
// losses, z-losses and weights as one process under pipeline stages (pp=2), ZeRO-3 (dp=2) and
// tensor parallelism (tp=2), each with `reef launch` on loopback.
#include <gtest/gtest.h>

#include "testing/same_run.h"
#include "testing/testing.h"

namespace reef {
namespace {

std::vector<std::string> run_args(const testing::ScratchDir& dir, const std::string& run,
                                  std::vector<std::string> extra = {}) {
  extra.insert(extra.begin(),
               {"train.micro_batch_size=2", "train.grad_accum=4", "train.z_loss=0.01"});
  return testing::pretrain_args(dir, run, extra);
}

TEST(ZLoss, ChangesTrainingAndEqualsOneProcessUnderEveryLayout) {
  testing::ScratchDir dir;
  testing::write_fortune_corpus(dir / "train.txt");
  auto r = testing::run_reef(run_args(dir, dir / "single"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = testing::run_reef(run_args(dir, dir / "off", {"train.z_loss=0"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto z = testing::metric_by_step(dir / "single/metrics.jsonl", "z_loss");
  ASSERT_EQ(z.size(), 6u);
  for (const auto& [step, v] : z) EXPECT_GT(v, 1.0) << step;  // log(Z)^2 of a 258-token vocab
  EXPECT_TRUE(testing::metric_by_step(dir / "off/metrics.jsonl", "z_loss").empty());
  // The same first step (the z-loss only adds a term), then other updates.
  auto on = testing::metric_by_step(dir / "single/metrics.jsonl", "loss"),
       off = testing::metric_by_step(dir / "off/metrics.jsonl", "loss");
  EXPECT_NEAR(on[1], off[1], 1e-6 * off[1]);
  EXPECT_GT(std::abs(on[6] - off[6]), 1e-5);

  testing::SameRunCheck check;
  check.metrics = {{"loss", 1e-5}, {"z_loss", 1e-5}};
  for (const std::string layout : {"parallel.pp=2", "parallel.zero=3", "parallel.tp=2"}) {
    const std::string run = dir / layout.substr(9);
    r = testing::run_reef(testing::launch_args(2, run_args(dir, run, {layout})));
    ASSERT_EQ(r.exit_code, 0) << layout << "\n" << r.output;
    SCOPED_TRACE(layout);
    expect_same_run(dir / "single", run, 6, check);
  }
}

}  // namespace
}  // namespace reef
