// Pipeline parallelism end to end with `reef launch` on loopback (2 processes, Gloo): parallel.pp=2
// logs the same per-step training and validation losses as the single-process run (fp32, the
// same global batch, 4 accumulated micro-batches so the 1F1B schedule has warm-up, steady state
// and cool-down) and ends with the same weights, for llama (untied head) and gpt2 (tied
// embeddings, their gradients summed between the first and last stage); a pp=2 checkpoint
// resumes in one process and a single-process checkpoint resumes at pp=2 with the same next
// losses; each stage writes its own part of a distributed checkpoint (the tied embedding once),
// or rank 0 a consolidated one; dp=2 x pp=2 with ZeRO-1 on 4 processes equals the single run too;
// more stages than decoder layers is one usage error.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/files.h"
#include "reef/checkpoint/safetensors.h"
#include "testing/same_run.h"
#include "testing/testing.h"

namespace reef {
namespace {

// testing::pretrain_args of `recipe` with 3 layers, a global batch of 8 (2 x 4 accumulated) and
// validation every 3 steps.
std::vector<std::string> run_args(const testing::ScratchDir& dir, const std::string& recipe,
                                  const std::string& run, std::vector<std::string> extra = {}) {
  extra.insert(extra.begin(),
               {"model.n_layers=3", "train.micro_batch_size=2", "train.grad_accum=4",
                "train.eval_every=3", "train.eval_batches=3", "data.valid_fraction=0.1"});
  return testing::pretrain_args(dir, run, extra, recipe);
}

// Losses and validation losses of steps >= from within 1e-5 relative, and the step-`step`
// weights and Adam moments (if step > 0).
void expect_same_run(const std::string& ref, const std::string& got, int64_t step,
                     int64_t from = 1) {
  testing::SameRunCheck check;
  check.metrics = {{"loss", 1e-5}, {"val_loss", 1e-5}};
  check.from = from;
  check.steps = 0;
  check.groups = {"model", "optimizer"};
  check.rtol = 1e-4;
  testing::expect_same_run(ref, got, step, check);
}

class PipelineRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir();
    testing::write_fortune_corpus(*dir_ / "train.txt");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // The single-process run of `recipe` (made once).
  static std::string single(const std::string& recipe) {
    const std::string run = *dir_ / ("single-" + std::filesystem::path(recipe).stem().string());
    if (!path_exists(run + "/metrics.jsonl")) {
      auto r = testing::run_reef(run_args(*dir_, recipe, run));
      EXPECT_EQ(r.exit_code, 0) << r.output;
    }
    return run;
  }
  static testing::ScratchDir* dir_;
};
testing::ScratchDir* PipelineRun::dir_ = nullptr;

TEST_F(PipelineRun, LlamaOnTwoStagesEqualsOneProcessAndResumesInOne) {
  const std::string ref = single("recipes/llama-tiny.yaml");
  const std::string run = *dir_ / "llama-pp2";
  auto r = testing::run_reef(
      testing::launch_args(2, run_args(*dir_, "recipes/llama-tiny.yaml", run, {"parallel.pp=2"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("pipeline: 2 stages, decoder layers [0, 2) [2, 3)"), std::string::npos)
      << r.output;
  expect_same_run(ref, run, 6);
  // Activations and gradients crossed between the stages: [2, 32, 64] float32 per micro-batch.
  auto sent = testing::metric_by_step(run + "/metrics.jsonl", "comm_send_bytes");
  ASSERT_TRUE(sent.count(1));
  EXPECT_EQ(sent[1], 4 * 2 * 32 * 64 * 4) << "rank 0 (stage 0) sends 4 micro-batches' activations";

  // Each stage wrote its own layers (a distributed checkpoint: no gather), which a single
  // process resumes.
  for (const char* f : {"rank-00000.safetensors", "rank-00001.safetensors", "dist_checkpoint.json"})
    EXPECT_TRUE(path_exists(run + "/checkpoints/step_3/" + f)) << f;
  EXPECT_FALSE(path_exists(run + "/checkpoints/step_3/model.safetensors"));
  {
    auto ck = DistCheckpoint::open(run + "/checkpoints/step_3");
    EXPECT_EQ(ck.tensor("model.layers.0.mlp.up_proj.weight").pieces.at(0).file,
              "rank-00000.safetensors");
    EXPECT_EQ(ck.tensor("model.layers.2.mlp.up_proj.weight").pieces.at(0).file,
              "rank-00001.safetensors");
    EXPECT_EQ(ck.tensor("lm_head.weight").pieces.at(0).file, "rank-00001.safetensors");
    EXPECT_EQ(ck.tensor("model.layers.2.mlp.up_proj.weight.exp_avg").pieces.at(0).file,
              "rank-00001.safetensors");
  }
  const std::string resumed = *dir_ / "llama-pp2-resumed";
  testing::seed_resume_dir(run, resumed, 3, /*metrics=*/false);
  r = testing::run_reef(run_args(*dir_, "recipes/llama-tiny.yaml", resumed, {"--resume"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from " + resumed + "/checkpoints/step_3 at step 3"),
            std::string::npos)
      << r.output;
  const auto resumed_losses = testing::metric_by_step(resumed + "/metrics.jsonl", "loss");
  ASSERT_FALSE(resumed_losses.empty());
  EXPECT_EQ(resumed_losses.begin()->first, 4) << "only the resumed steps ran";
  expect_same_run(ref, resumed, 6, 4);
}

TEST_F(PipelineRun, SingleProcessCheckpointResumesOnTwoStages) {
  const std::string ref = single("recipes/llama-tiny.yaml");
  const std::string run = *dir_ / "llama-resume-pp2";
  testing::seed_resume_dir(ref, run, 3, /*metrics=*/false);
  auto r = testing::run_reef(testing::launch_args(
      2, run_args(*dir_, "recipes/llama-tiny.yaml", run, {"parallel.pp=2", "--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from " + run + "/checkpoints/step_3 at step 3"),
            std::string::npos)
      << r.output;
  const auto resumed_losses = testing::metric_by_step(run + "/metrics.jsonl", "loss");
  ASSERT_FALSE(resumed_losses.empty());
  EXPECT_EQ(resumed_losses.begin()->first, 4) << "only the resumed steps ran";
  expect_same_run(ref, run, 6, 4);
}

TEST_F(PipelineRun, Gpt2WithTiedEmbeddingsOnTwoStagesEqualsOneProcess) {
  const std::string ref = single("recipes/gpt2-tiny.yaml");
  const std::string run = *dir_ / "gpt2-pp2";
  // The consolidated layout: the stages' tensors are gathered and rank 0 writes one folder.
  auto r = testing::run_reef(
      testing::launch_args(2, run_args(*dir_, "recipes/gpt2-tiny.yaml", run,
                                       {"parallel.pp=2", "checkpoint.layout=consolidated"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(path_exists(run + "/checkpoints/step_6/model.safetensors"));
  expect_same_run(ref, run, 6);
  // Distributed: the tied embedding is written once, by the first stage.
  const std::string dist = *dir_ / "gpt2-pp2-dist";
  r = testing::run_reef(
      testing::launch_args(2, run_args(*dir_, "recipes/gpt2-tiny.yaml", dist, {"parallel.pp=2"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(ref, dist, 6);
  auto ck = DistCheckpoint::open(dist + "/checkpoints/step_6");
  ASSERT_EQ(ck.tensor("transformer.wte.weight").pieces.size(), 1u);
  EXPECT_EQ(ck.tensor("transformer.wte.weight").pieces[0].file, "rank-00000.safetensors");
}

TEST_F(PipelineRun, DataParallelPipelinesWithZeroOnFourRanksEqualOneProcess) {
  // dp=2 x pp=2: each stage's gradient all-reduce and ZeRO-1 run over its own dp sub-group.
  const std::string ref = single("recipes/llama-tiny.yaml");
  const std::string run = *dir_ / "llama-dp2-pp2";
  auto r = testing::run_reef(testing::launch_args(
      4, run_args(*dir_, "recipes/llama-tiny.yaml", run, {"parallel.pp=2", "parallel.zero=1"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(ref, run, 6);
}

TEST(PipelineUsage, MoreStagesThanLayersIsOneUsageError) {
  testing::ScratchDir dir;
  testing::write_fortune_corpus(dir / "train.txt");
  auto r = testing::run_reef(
      run_args(dir, "recipes/llama-tiny.yaml", dir / "run", {"parallel.pp=2", "model.n_layers=1"}));
  EXPECT_EQ(r.exit_code, 2) << "a usage error, before the ranks even meet";
  EXPECT_NE(r.output.find(
                "parallel.pp=2 (command line): the model has model.n_layers=1 decoder layers and "
                "every pipeline stage needs at least one; use parallel.pp <= 1"),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace reef
