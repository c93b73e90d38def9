// Tensor parallelism end to end (`reef launch` on loopback, Gloo): tp=2 pretraining of a GQA
// llama and of a tied-embedding one logs the single-process run's per-step losses (1e-5
// relative, fp32, same global batch) and checkpoints the same weights and Adam moments; a tp=2
// (distributed) checkpoint holds each rank's slices and resumes at tp=2 and in one process (and
// `reef generate` reads it), a one-process checkpoint resumes at tp=2; dp=2 x tp=2 with ZeRO-1
// and tp=2 x pp=2 on 4 ranks match too, and their checkpoints resume in other layouts; so do
// the same layouts with sequence parallelism, whose collectives move the expected bytes; the
// consolidated layout gathers; unsplittable models are usage errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "reef/base/files.h"
#include "reef/checkpoint/safetensors.h"
#include "testing/same_run.h"
#include "testing/testing.h"

namespace reef {
namespace {

using testing::pretrain_args;  // llama-tiny at hidden 64: 4 heads over 2 KV heads (GQA)

// Same losses (and gradient norms) at every step, and the same weights and Adam moments in the
// step's checkpoint.
void expect_same_run(const std::string& ref, const std::string& got, int64_t step) {
  testing::SameRunCheck check;
  check.metrics = {{"loss", 1e-5}, {"grad_norm", 1e-4}};
  check.groups = {"model", "optimizer"};
  check.rtol = 1e-4;
  check.atol = 1e-5;
  testing::expect_same_run(ref, got, step, check);
}

class TensorParallelRun : public ::testing::Test {
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
testing::ScratchDir* TensorParallelRun::dir_ = nullptr;

TEST_F(TensorParallelRun, GqaLlamaOnTwoRanksEqualsOneProcessAndResumesInOne) {
  const std::string run = *dir_ / "tp2";
  auto r = testing::run_reef(testing::launch_args(2, pretrain_args(*dir_, run, {"parallel.tp=2"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("dp=1 tp=2 pp=1 zero=0"), std::string::npos) << r.output;
  expect_same_run(*dir_ / "single", run, 6);
  // The tp all-reduces are counted: two per layer in forward, and their conjugates in backward.
  auto m = testing::metric_by_step(run + "/metrics.jsonl", "comm_all_reduce_bytes");
  ASSERT_TRUE(m.count(6));
  EXPECT_GT(m[6], 0.0);
  // The step-3 checkpoint is distributed: each rank wrote its half of every split matrix (a box
  // of the whole tensor) and of its Adam moments; the replicated norms once.
  const std::string ck3 = run + "/checkpoints/step_3";
  EXPECT_FALSE(path_exists(ck3 + "/model.safetensors"));
  {
    auto ck = DistCheckpoint::open(ck3);
    const auto& q = ck.tensor("model.layers.0.self_attn.q_proj.weight");
    ASSERT_EQ(q.pieces.size(), 2u);
    EXPECT_EQ(q.shape, (std::vector<int64_t>{64, 64}));
    std::set<std::string> boxes;
    for (const auto& p : q.pieces) boxes.insert(p.file + " " + p.slice.str());
    EXPECT_EQ(boxes, (std::set<std::string>{"rank-00000.safetensors [0:32, 0:64]",
                                            "rank-00001.safetensors [32:64, 0:64]"}));
    EXPECT_EQ(ck.tensor("model.layers.0.mlp.down_proj.weight.exp_avg").pieces.size(), 2u);
    EXPECT_EQ(ck.tensor("model.norm.weight").pieces.size(), 1u);
  }
  // tp=2 resumes it reading only its slices, with the same losses.
  const std::string again = *dir_ / "tp2-resumed-in-tp2";
  testing::seed_resume_dir(run, again, 3);
  r = testing::run_reef(
      testing::launch_args(2, pretrain_args(*dir_, again, {"parallel.tp=2", "--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", again, 6);
  // A single process resumes it with the same losses.
  const std::string resumed = *dir_ / "tp2-resumed-in-one";
  testing::seed_resume_dir(run, resumed, 3);
  r = testing::run_reef(pretrain_args(*dir_, resumed, {"--resume"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", resumed, 6);
  // and reef generate reads it.
  r = testing::run_reef({"generate", "--checkpoint", run, "--prompt", "fortune", "--greedy",
                         "--max-new-tokens", "8", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fortune"), std::string::npos) << r.output;
}

TEST_F(TensorParallelRun, OneProcessCheckpointResumesAtTwoRanks) {
  const std::string resumed = *dir_ / "one-resumed-in-tp2";
  testing::seed_resume_dir(*dir_ / "single", resumed, 3);
  auto r = testing::run_reef(
      testing::launch_args(2, pretrain_args(*dir_, resumed, {"parallel.tp=2", "--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", resumed, 6);
}

TEST_F(TensorParallelRun, TiedEmbeddingsOnTwoRanksEqualOneProcess) {
  const std::string single = *dir_ / "tied-single", run = *dir_ / "tied-tp2";
  auto r = testing::run_reef(pretrain_args(*dir_, single, {"model.tie_embeddings=true"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = testing::run_reef(testing::launch_args(
      2, pretrain_args(*dir_, run, {"model.tie_embeddings=true", "parallel.tp=2"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(single, run, 6);
  EXPECT_EQ(
      testing::checkpoint_tensors(run + "/checkpoints/step_6", "model").count("lm_head.weight"),
      0u);
}

TEST_F(TensorParallelRun, DataTimesTensorParallelWithZeroOnFourRanks) {
  const std::string run = *dir_ / "dp2tp2";
  auto r = testing::run_reef(
      testing::launch_args(4, pretrain_args(*dir_, run, {"parallel.tp=2", "parallel.zero=1"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("dp=2 tp=2 pp=1 zero=1"), std::string::npos) << r.output;
  expect_same_run(*dir_ / "single", run, 6);
  // Its checkpoint holds each rank's ZeRO-1 slices of its tp slices (boxes of the whole
  // moments); tp=2 without ZeRO resumes it.
  const std::string resumed = *dir_ / "dp2tp2-resumed-in-tp2";
  testing::seed_resume_dir(run, resumed, 3);
  r = testing::run_reef(
      testing::launch_args(2, pretrain_args(*dir_, resumed, {"parallel.tp=2", "--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", resumed, 6);
}

TEST_F(TensorParallelRun, TensorTimesPipelineOnFourRanksEqualsOneProcess) {
  // tp=2 x pp=2: each stage's layer split over its tp pair; activations go between the stages'
  // ranks of the same tp rank. Its distributed checkpoint resumes in one process.
  const std::string run = *dir_ / "tp2pp2";
  auto r = testing::run_reef(
      testing::launch_args(4, pretrain_args(*dir_, run, {"parallel.tp=2", "parallel.pp=2"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("dp=1 tp=2 pp=2"), std::string::npos) << r.output;
  expect_same_run(*dir_ / "single", run, 6);
  auto ck = DistCheckpoint::open(run + "/checkpoints/step_3");
  // Layer 0 is stage 0's (ranks 0, 1), layer 1 stage 1's (ranks 2, 3), each split in two.
  std::set<std::string> files;
  for (const auto& p : ck.tensor("model.layers.1.mlp.gate_proj.weight").pieces)
    files.insert(p.file);
  EXPECT_EQ(files, (std::set<std::string>{"rank-00002.safetensors", "rank-00003.safetensors"}));
  const std::string resumed = *dir_ / "tp2pp2-resumed-in-one";
  testing::seed_resume_dir(run, resumed, 3);
  r = testing::run_reef(pretrain_args(*dir_, resumed, {"--resume"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", resumed, 6);
}

// Sequence parallelism: the norms and residuals of each rank hold half of the sequence; the
// losses, gradient norms, weights and Adam moments are the single process's.
TEST_F(TensorParallelRun, SequenceParallelOnTwoRanksEqualsOneProcess) {
  const std::string run = *dir_ / "tp2-sp";
  auto r = testing::run_reef(testing::launch_args(
      2, pretrain_args(*dir_, run, {"parallel.tp=2", "parallel.sequence_parallel=true"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("dp=1 tp=2 pp=1 zero=0 sequence_parallel"), std::string::npos)
      << r.output;
  expect_same_run(*dir_ / "single", run, 6);
  // Reduce-scatters and all-gathers take the place of the activation all-reduces. Per micro-batch
  // ([4, 32, 64] fp32 activations; 2 per step), 4 x n_layers + 2 reduce-scatters (forward: the
  // embedding and both row-parallel outputs per layer; backward: the head's and both layer
  // inputs' gathers) each handed the whole activation, and as many all-gathers each of its
  // half, plus the cross-entropy's row maxima ([128] fp32).
  const double whole = 4 * 32 * 64 * 4, per_micro = 4 * 2 + 2;
  auto rs = testing::metric_by_step(run + "/metrics.jsonl", "comm_reduce_scatter_bytes");
  auto ag = testing::metric_by_step(run + "/metrics.jsonl", "comm_all_gather_bytes");
  auto ar = testing::metric_by_step(run + "/metrics.jsonl", "comm_all_reduce_bytes");
  ASSERT_TRUE(rs.count(6) && ag.count(6) && ar.count(6));
  EXPECT_EQ(rs[6], 2 * per_micro * whole);
  EXPECT_EQ(ag[6], 2 * (per_micro * whole / 2 + 128 * 4));
  EXPECT_LT(ar[6], whole) << "only the loss sums and the replicated gradients are all-reduced";
  // Its checkpoint is an ordinary tp=2 one: one process resumes it with the same losses.
  const std::string resumed = *dir_ / "tp2-sp-resumed-in-one";
  testing::seed_resume_dir(run, resumed, 3);
  r = testing::run_reef(pretrain_args(*dir_, resumed, {"--resume"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", resumed, 6);
}

TEST_F(TensorParallelRun, SequenceParallelWithPipelineStagesOnFourRanksEqualsOneProcess) {
  // tp=2 x pp=2: the activations between the stages are each tp rank's half of the sequence.
  const std::string run = *dir_ / "tp2pp2-sp";
  auto r = testing::run_reef(testing::launch_args(
      4, pretrain_args(*dir_, run,
                       {"parallel.tp=2", "parallel.pp=2", "parallel.sequence_parallel=true"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_run(*dir_ / "single", run, 6);
  // Rank 0 (stage 0) sends 2 micro-batches of [4, 16, 64] fp32 per step.
  auto sent = testing::metric_by_step(run + "/metrics.jsonl", "comm_send_bytes");
  ASSERT_TRUE(sent.count(6));
  EXPECT_EQ(sent[6], 2.0 * 4 * 16 * 64 * 4);
}

TEST_F(TensorParallelRun, SequenceParallelWithDataParallelAndZeroOnFourRanksEqualsOneProcess) {
  const std::string run = *dir_ / "dp2tp2-sp";
  auto r = testing::run_reef(testing::launch_args(
      4, pretrain_args(*dir_, run,
                       {"parallel.tp=2", "parallel.zero=1", "parallel.sequence_parallel=true"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("dp=2 tp=2 pp=1 zero=1 sequence_parallel"), std::string::npos)
      << r.output;
  expect_same_run(*dir_ / "single", run, 6);
}

TEST_F(TensorParallelRun, ConsolidatedLayoutGathersToOneFolder) {
  const std::string run = *dir_ / "tp2-consolidated";
  auto r = testing::run_reef(testing::launch_args(
      2, pretrain_args(*dir_, run, {"parallel.tp=2", "checkpoint.layout=consolidated"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(path_exists(run + "/checkpoints/step_6/model.safetensors"));
  EXPECT_FALSE(path_exists(run + "/checkpoints/step_6/dist_checkpoint.json"));
  expect_same_run(*dir_ / "single", run, 6);
}

TEST(TensorParallelUsage, UnsplittableModelsAreOneUsageError) {
  testing::ScratchDir dir;
  testing::write_fortune_corpus(dir / "train.txt");
  auto r = testing::run_reef(testing::launch_args(
      2, pretrain_args(dir, dir / "kv", {"parallel.tp=2", "model.n_kv_heads=1"})));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("parallel.tp=2: model.n_kv_heads=1 is not divisible by it"),
            std::string::npos)
      << r.output;
  r = testing::run_reef(testing::launch_args(
      2, pretrain_args(dir, dir / "vocab", {"parallel.tp=2", "model.vocab_size=259"})));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.vocab_size=259 is not divisible by it"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("set model.vocab_size=260"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "kv")) << "nothing is written";
  r = testing::run_reef(testing::launch_args(
      4, pretrain_args(dir, dir / "tppp",
                       {"parallel.tp=2", "parallel.pp=2", "checkpoint.layout=consolidated"})));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("checkpoints are distributed; use checkpoint.layout=auto"),
            std::string::npos)
      << r.output;
  r = testing::run_reef(testing::launch_args(
      2, pretrain_args(dir, dir / "sp",
                       {"parallel.tp=2", "parallel.sequence_parallel=true", "data.seq_len=33"})));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("data.seq_len=33 is not divisible by parallel.tp=2"), std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "sp")) << "nothing is written";
}

}  // namespace
}  // namespace reef
