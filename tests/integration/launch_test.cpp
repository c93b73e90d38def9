// `reef launch` end to end on loopback: data-parallel pretraining on 2 ranks (plain and ZeRO-1)
// logs the same per-step losses as the single-process run and ends with the same weights; a
// ZeRO-1 (distributed) checkpoint resumes in a single process; a rank killed mid-run makes launch
// exit non-zero naming it; unsupported layouts are one usage error; --slurm writes a script.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "reef/base/files.h"
#include "reef/checkpoint/dist_checkpoint.h"
#include "reef/checkpoint/safetensors.h"
#include "testing/same_run.h"
#include "testing/testing.h"

namespace reef {
namespace {

using testing::expect_same_run;
using testing::pretrain_args;

class Launch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir();
    testing::write_fortune_corpus(*dir_ / "train.txt");
    auto r = testing::run_reef(pretrain_args(*dir_, *dir_ / "single"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static testing::ScratchDir* dir_;
};
testing::ScratchDir* Launch::dir_ = nullptr;

TEST_F(Launch, DataParallelOnTwoRanksEqualsOneProcess) {
  const std::string run = *dir_ / "dp2";
  auto r = testing::run_reef(testing::launch_args(2, pretrain_args(*dir_, run)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[rank 0] "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(
                "parallel: 2 ranks (torchrun environment, gloo backend), dp=2 tp=1 pp=1 zero=0"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("[rank 1] "), std::string::npos) << "rank 1 logs nothing but errors:\n"
                                                           << r.output;
  expect_same_run(*dir_ / "single", run, 6);
}

TEST_F(Launch, ZeroOneOnTwoRanksEqualsOneProcessAndResumesInOne) {
  const std::string run = *dir_ / "zero";
  auto r =
      testing::run_reef(testing::launch_args(2, pretrain_args(*dir_, run, {"parallel.zero=1"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", run, 6);
  // The step-3 checkpoint (each rank's pieces) resumes in one process.
  const std::string resumed = *dir_ / "zero-resumed";
  testing::seed_resume_dir(run, resumed, 3);
  r = testing::run_reef(pretrain_args(*dir_, resumed, {"--resume"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", resumed, 6);
}

TEST_F(Launch, MicroBatchSplitWhenAccumulationDoesNotDivide) {
  const std::string run = *dir_ / "split", single = *dir_ / "split-single";
  auto extra = std::vector<std::string>{"train.grad_accum=1", "train.micro_batch_size=8"};
  auto r = testing::run_reef(pretrain_args(*dir_, single, extra));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = testing::run_reef(testing::launch_args(2, pretrain_args(*dir_, run, extra)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(single, run, 6);
}

TEST_F(Launch, AKilledRankStopsTheOthersAndIsNamed) {
  const std::string run = *dir_ / "killed";
  auto args = testing::launch_args(
      2, pretrain_args(*dir_, run,
                       {"train.max_steps=100000", "checkpoint.every=0", "parallel.timeout_s=60"}));
  args.insert(args.begin(), testing::reef_bin());
  args.insert(args.begin() + 2, {"--grace-s", "5"});
  const std::string log = *dir_ / "killed.log";
  int pid = testing::spawn_process(args, testing::source_dir(), log);
  // Wait until training runs (rank 0 logs steps), then SIGKILL rank 1.
  auto t0 = std::chrono::steady_clock::now();
  while (!path_exists(run + "/metrics.jsonl") || read_file(run + "/metrics.jsonl").empty()) {
    int code = 0;
    ASSERT_FALSE(testing::try_wait_process(pid, &code)) << read_file(log);
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60)) << read_file(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::istringstream children(
      read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"));
  std::vector<int> kids;
  for (int c; children >> c;) kids.push_back(c);
  ASSERT_EQ(kids.size(), 2u);
  // Rank 1 is the child whose environment says RANK=1.
  std::string env1 = read_file("/proc/" + std::to_string(kids[1]) + "/environ");
  if (env1.find(std::string("RANK=1\0", 7)) == std::string::npos) std::swap(kids[0], kids[1]);
  ::kill(kids[1], SIGKILL);
  int code = -1;
  auto t_kill = std::chrono::steady_clock::now();
  while (!testing::try_wait_process(pid, &code)) {
    ASSERT_LT(std::chrono::steady_clock::now() - t_kill, std::chrono::seconds(60))
        << "launch hangs\n"
        << read_file(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(code, 0);
  const std::string out = read_file(log);
  EXPECT_NE(
      out.find("reef launch: rank 1 (pid " + std::to_string(kids[1]) + ") failed with signal 9"),
      std::string::npos)
      << out;
  EXPECT_NE(::kill(kids[0], 0), 0) << "rank 0 still runs";
}

TEST(LaunchUsage, UnsupportedLayoutsAndBadOptionsAreOneLine) {
  auto r = testing::run_reef({"pretrain", "--config", "recipes/llama-tiny.yaml", "parallel.tp=2"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("the world size 1 is not a multiple of parallel.tp=2 x parallel.pp=1"),
            std::string::npos)
      << r.output;
  r = testing::run_reef({"pretrain", "--config", "recipes/llama-tiny.yaml", "parallel.dp=2"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("parallel.dp=2 x tp=1 x pp=1 = 2 ranks, but the run has 1"),
            std::string::npos)
      << r.output;
  r = testing::run_reef({"launch", "--nproc-per-node", "0", "--", "reef", "pretrain"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--nproc-per-node=0"), std::string::npos) << r.output;
  r = testing::run_reef(
      {"launch", "--nproc-per-node", "2", "--nnodes", "2", "--", "reef", "pretrain"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("needs --master-port"), std::string::npos) << r.output;
}

TEST(LaunchUsage, SlurmWritesAnSbatchScript) {
  testing::ScratchDir dir;
  auto r = testing::run_reef({"launch", "--slurm", "--nodes", "2", "--gpus-per-node", "8",
                              "--partition", "gpu", "--sbatch-file", dir / "job.sbatch", "--",
                              "reef", "pretrain", "--config", "recipes/llama-tiny.yaml",
                              "run.device=cuda", "run.dir=runs/a b"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string s = read_file(dir / "job.sbatch");
  EXPECT_EQ(s.rfind("#!/bin/bash\n", 0), 0u);
  for (const char* want :
       {"#SBATCH --nodes=2\n", "#SBATCH --ntasks-per-node=8\n", "#SBATCH --gpus-per-node=8\n",
        "#SBATCH --partition=gpu\n", "export MASTER_PORT=29500\n",
        "srun --kill-on-bad-exit=1 --label reef pretrain --config recipes/llama-tiny.yaml "
        "run.device=cuda 'run.dir=runs/a b'\n"})
    EXPECT_NE(s.find(want), std::string::npos) << want << "\n" << s;
}

}  // namespace
}  // namespace reef
