// ZeRO-3 / FSDP (parallel.zero=3) end to end with `reef launch` on loopback: dp=2 with
// parameters sharded logs the same per-step losses as the single-process run (each rank
// accumulating two micro-batches) and ends with the same weights, in both checkpoint layouts;
// its distributed checkpoint resumes in one process and at dp=2 zero=1, and a single-process
// checkpoint resumes at zero=3; combinations it does not support are one usage error.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "reef/base/files.h"
#include "reef/checkpoint/dist_checkpoint.h"
#include "reef/checkpoint/safetensors.h"
#include "testing/same_run.h"
#include "testing/testing.h"

namespace reef {
namespace {

// testing::pretrain_args with each of 2 ranks accumulating 2 micro-batches (2 x 4 in all).
std::vector<std::string> run_args(const testing::ScratchDir& dir, const std::string& run,
                                  std::vector<std::string> extra = {}) {
  extra.insert(extra.begin(), {"train.micro_batch_size=2", "train.grad_accum=4"});
  return testing::pretrain_args(dir, run, extra);
}

using testing::expect_same_run;

class Fsdp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir();
    testing::write_fortune_corpus(*dir_ / "train.txt");
    auto r = testing::run_reef(run_args(*dir_, *dir_ / "single"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = testing::run_reef(
        testing::launch_args(2, run_args(*dir_, *dir_ / "zero3", {"parallel.zero=3"})));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    zero3_output_ = new std::string(r.output);
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete zero3_output_;
    dir_ = nullptr;
  }
  static testing::ScratchDir* dir_;
  static std::string* zero3_output_;
};
testing::ScratchDir* Fsdp::dir_ = nullptr;
std::string* Fsdp::zero3_output_ = nullptr;

TEST_F(Fsdp, ZeroThreeOnTwoRanksEqualsOneProcess) {
  const std::string run = *dir_ / "zero3";
  EXPECT_NE(zero3_output_->find("zero=3 (FSDP): 3 parameter units sharded over 2 ranks"),
            std::string::npos)
      << *zero3_output_;
  expect_same_run(*dir_ / "single", run, 3);
  expect_same_run(*dir_ / "single", run, 6);
  // Per step and rank: 2 micro-batches x 3 units reduce-scattered, and the units all-gathered.
  auto calls = testing::metric_by_step(run + "/metrics.jsonl", "comm_reduce_scatter_calls");
  auto gathered = testing::metric_by_step(run + "/metrics.jsonl", "comm_all_gather_bytes");
  ASSERT_EQ(calls.size(), 6u);
  for (const auto& [s, n] : calls) EXPECT_EQ(n, 6) << "step " << s;
  for (const auto& [s, b] : gathered) EXPECT_GT(b, 0) << "step " << s;
  EXPECT_TRUE(path_exists(run + "/checkpoints/step_3/" + kDistIndexFile));
}

TEST_F(Fsdp, ConsolidatedCheckpointsEqualOneProcess) {
  const std::string run = *dir_ / "zero3-cons";
  auto r = testing::run_reef(testing::launch_args(
      2, run_args(*dir_, run, {"parallel.zero=3", "checkpoint.layout=consolidated"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(path_exists(run + "/checkpoints/step_6/model.safetensors"));
  expect_same_run(*dir_ / "single", run, 6);
}

TEST_F(Fsdp, ZeroThreeCheckpointResumesInOneProcessAndAtZeroOne) {
  const std::string one = *dir_ / "zero3-to-one";
  testing::seed_resume_dir(*dir_ / "zero3", one, 3);
  auto r = testing::run_reef(run_args(*dir_, one, {"--resume"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", one, 6);

  const std::string z1 = *dir_ / "zero3-to-zero1";
  testing::seed_resume_dir(*dir_ / "zero3", z1, 3);
  r = testing::run_reef(
      testing::launch_args(2, run_args(*dir_, z1, {"parallel.zero=1", "--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", z1, 6);
}

TEST_F(Fsdp, OneProcessCheckpointResumesAtZeroThree) {
  const std::string run = *dir_ / "one-to-zero3";
  testing::seed_resume_dir(*dir_ / "single", run, 3);
  auto r = testing::run_reef(
      testing::launch_args(2, run_args(*dir_, run, {"parallel.zero=3", "--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", run, 6);
}

TEST_F(Fsdp, UnsupportedCombinationsAreUsageErrors) {
  auto r = testing::run_reef(testing::launch_args(
      2, run_args(*dir_, *dir_ / "zero3-tp",
                  {"parallel.zero=3", "parallel.tp=2", "model.n_heads=2", "model.n_kv_heads=2"})));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("(FSDP) shards parameters over data-parallel ranks only"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("parallel.tp = 2 from"), std::string::npos) << r.output;
  r = testing::run_reef(run_args(*dir_, *dir_ / "zero3-pp", {"parallel.zero=3", "parallel.pp=2"}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("parallel.pp = 2 from"), std::string::npos) << r.output;
  r = testing::run_reef(run_args(*dir_, *dir_ / "zero2", {"parallel.zero=2"}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("parallel.zero"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace reef
