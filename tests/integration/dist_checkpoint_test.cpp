// Distributed checkpoints end to end on loopback (2 ranks, Gloo): a ZeRO-1 or plain data-parallel
// run writes one piece file per rank and an index instead of gathering to rank 0; the pieces hold
// exactly what the gathered (consolidated) checkpoint of the same run holds; resuming from them on
// one process, or on two ranks with or without ZeRO, continues with the uninterrupted run's
// losses; `reef generate` reads the folder and `reef convert` consolidates it into a Hugging Face
// folder that transformers loads with the training run's logits; damaged folders are refused
// with one line naming the file or the tensor.
#include "reef/checkpoint/dist_checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/safetensors.h"
#include "testing/same_run.h"
#include "testing/testing.h"

namespace reef {
namespace {

namespace fs = std::filesystem;

using testing::pretrain_args;

// A run folder holding only `from`'s step_3 checkpoint, to resume.
std::string run_with_step3(const std::string& from, const std::string& to) {
  testing::seed_resume_dir(from, to, 3, /*metrics=*/false);
  return to;
}

// Steps 4..6 of `got` equal `want`'s within `rel` (0: exactly).
void expect_next_losses(const std::string& want, const std::string& got, double rel) {
  auto a = testing::metric_by_step(want + "/metrics.jsonl"),
       b = testing::metric_by_step(got + "/metrics.jsonl");
  for (int64_t s = 4; s <= 6; ++s) {
    ASSERT_TRUE(a.count(s) && b.count(s)) << "step " << s << " in " << want << " / " << got;
    if (rel == 0)
      EXPECT_EQ(b[s], a[s]) << "loss at step " << s << " of " << got;
    else
      EXPECT_NEAR(b[s], a[s], rel * std::abs(a[s])) << "loss at step " << s << " of " << got;
  }
}

// The line of `output` that holds `part` (the CLI's one-line error), or "".
std::string line_with(const std::string& output, const std::string& part) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line))
    if (line.find(part) != std::string::npos) return line;
  return "";
}

class DistCheckpointRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir();
    testing::write_fortune_corpus(*dir_ / "train.txt");
    // The same ZeRO-1 run twice: pieces per rank (auto with 2 ranks) and the gathered layout.
    for (const auto& [run, layout] :
         {std::pair<std::string, std::string>{"zero", "auto"}, {"zero-cons", "consolidated"}}) {
      auto r = testing::run_reef(testing::launch_args(
          2,
          pretrain_args(*dir_, *dir_ / run, {"parallel.zero=1", "checkpoint.layout=" + layout})));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static testing::ScratchDir* dir_;
};
testing::ScratchDir* DistCheckpointRun::dir_ = nullptr;

TEST_F(DistCheckpointRun, ZeroOneWritesPiecesPerRankHoldingExactlyTheGatheredState) {
  const std::string ck = *dir_ / "zero/checkpoints/step_3",
                    cons = *dir_ / "zero-cons/checkpoints/step_3";
  for (const char* f : {"rank-00000.safetensors", "rank-00001.safetensors", "dist_checkpoint.json",
                        "trainer_state.json", "config.json", "generation_config.json",
                        "tokenizer.json", "config.yaml"})
    EXPECT_TRUE(path_exists(ck + "/" + f)) << f;
  EXPECT_FALSE(path_exists(ck + "/model.safetensors"));
  EXPECT_FALSE(path_exists(ck + "/optimizer.safetensors"));
  EXPECT_EQ(nlohmann::json::parse(read_file(ck + "/trainer_state.json"))["layout"], "distributed");

  // Both ranks wrote model weights (whole tensors) and their own ZeRO slices.
  auto index = nlohmann::json::parse(read_file(ck + "/dist_checkpoint.json"));
  std::map<std::string, int> model_pieces, optimizer_pieces;
  int split_moments = 0;
  for (const auto& [name, t] : index["tensors"].items()) {
    for (const auto& p : t["pieces"]) {
      if (t["group"] == "model") {
        EXPECT_TRUE(p.contains("offsets")) << name;
        ++model_pieces[p["file"]];
      } else {
        // A moment inside one rank's slice is written whole; one cut between slices as flat runs.
        if (t["pieces"].size() == 1)
          EXPECT_EQ(p["lengths"], t["shape"]) << name;
        else
          EXPECT_TRUE(p.contains("flat")) << name;
        ++optimizer_pieces[p["file"]];
      }
    }
    if (t["group"] == "optimizer" && t["pieces"].size() == 2) ++split_moments;
  }
  EXPECT_EQ(model_pieces.size(), 2u);
  EXPECT_EQ(optimizer_pieces.size(), 2u);
  EXPECT_GE(split_moments, 2) << "a moment cut between the two ranks' slices";

  // The pieces hold exactly the gathered checkpoint of the same run.
  auto dist = DistCheckpoint::open(ck);
  size_t n = 0;
  for (const char* file : {"/model.safetensors", "/optimizer.safetensors"}) {
    for (const auto& [name, t] : load_safetensors(cons + file)) {
      ASSERT_TRUE(dist.contains(name)) << name;
      EXPECT_TRUE(torch::equal(dist.read(name, TensorSlice::whole(t.sizes().vec())), t)) << name;
      ++n;
    }
  }
  EXPECT_EQ(n, dist.names().size());
  expect_next_losses(*dir_ / "zero-cons", *dir_ / "zero", 0);
}

TEST_F(DistCheckpointRun, ResumesOnOneProcessAndOnTwoRanksWithAndWithoutZero) {
  const std::string zero = *dir_ / "zero";
  // Same layout: the uninterrupted run's losses exactly.
  std::string run = run_with_step3(zero, *dir_ / "r-zero2");
  auto r = testing::run_reef(
      testing::launch_args(2, pretrain_args(*dir_, run, {"parallel.zero=1", "--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_next_losses(zero, run, 0);
  // dp=2 without ZeRO, and one process: the same within float rounding of the reductions.
  run = run_with_step3(zero, *dir_ / "r-dp2");
  r = testing::run_reef(testing::launch_args(2, pretrain_args(*dir_, run, {"--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_next_losses(zero, run, 1e-6);
  run = run_with_step3(zero, *dir_ / "r-one");
  r = testing::run_reef(pretrain_args(*dir_, run, {"--resume"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_next_losses(zero, run, 1e-6);
  EXPECT_TRUE(path_exists(run + "/checkpoints/step_6/model.safetensors"))
      << "one process: consolidated";
  // Resuming the gathered checkpoint of the same run gives bit-identical losses: the state read
  // from the pieces is exactly the gathered state.
  run = run_with_step3(*dir_ / "zero-cons", *dir_ / "r-one-cons");
  r = testing::run_reef(pretrain_args(*dir_, run, {"--resume"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_next_losses(*dir_ / "r-one", run, 0);
}

TEST_F(DistCheckpointRun, PlainDataParallelSplitsWholeTensorsAndResumesWithZero) {
  const std::string dp = *dir_ / "dp";
  auto r = testing::run_reef(testing::launch_args(2, pretrain_args(*dir_, dp)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto index = nlohmann::json::parse(read_file(dp + "/checkpoints/step_3/dist_checkpoint.json"));
  std::map<std::string, int> per_file;
  for (const auto& [name, t] : index["tensors"].items()) {
    ASSERT_EQ(t["pieces"].size(), 1u) << name << ": replicated state is written once, whole";
    EXPECT_TRUE(t["pieces"][0].contains("offsets")) << name;
    ++per_file[t["pieces"][0]["file"]];
    // A parameter's moments are written by the rank that writes the parameter.
    if (t["group"] == "optimizer") {
      const std::string param = name.substr(0, name.rfind(".exp_avg"));
      EXPECT_EQ(t["pieces"][0]["file"], index["tensors"][param]["pieces"][0]["file"]) << name;
    }
  }
  EXPECT_EQ(per_file.size(), 2u);
  std::string run = run_with_step3(dp, *dir_ / "dp-r-zero");
  r = testing::run_reef(
      testing::launch_args(2, pretrain_args(*dir_, run, {"parallel.zero=1", "--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_next_losses(dp, run, 1e-6);
  run = run_with_step3(dp, *dir_ / "dp-r-dp");
  r = testing::run_reef(testing::launch_args(2, pretrain_args(*dir_, run, {"--resume"})));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_next_losses(dp, run, 0);
}

TEST_F(DistCheckpointRun, GenerateReadsItAndConvertConsolidatesItForTransformers) {
  const std::string zero = *dir_ / "zero", cons = *dir_ / "zero-cons";
  auto gen = [](const std::string& model) {
    return testing::run_reef({"generate", "--checkpoint", model, "--greedy", "--print-ids", "-n",
                              "12", "--prompt", "fortune favours", "--threads", "1"});
  };
  // The printed ids (log lines name the folders, which differ).
  auto ids = [](const std::string& output) {
    std::istringstream in(output);
    std::string line, out;
    while (std::getline(in, line))
      if (!line.empty() && line.find_first_not_of("0123456789 ") == std::string::npos)
        out += line + "\n";
    return out;
  };
  auto a = gen(zero), b = gen(cons);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_NE(ids(a.output), "") << a.output;
  EXPECT_EQ(ids(a.output), ids(b.output));

  const std::string hf = *dir_ / "zero-hf";
  auto r = testing::run_reef({"convert", "--model", zero + "/checkpoints/step_6", "--out", hf});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The consolidated weights are the gathered checkpoint's, bit for bit.
  auto want = load_safetensors(cons + "/checkpoints/step_6/model.safetensors");
  auto got = load_safetensors(hf + "/model.safetensors");
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, t] : want)
    EXPECT_TRUE(got.count(name) && torch::equal(got[name], t)) << name;
  EXPECT_EQ(read_file(hf + "/tokenizer.json"),
            read_file(zero + "/checkpoints/step_6/tokenizer.json"));

  // transformers loads it with the logits of the training run's model (read from the pieces).
  const std::string out = *dir_ / "hf_logits.safetensors";
  r = testing::run_python({"tests/integration/dist_checkpoint_reference.py", "logits", hf, out});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ref = load_safetensors(out);
  CausalLM model = load_model_folder(zero + "/checkpoints/step_6", torch::kCPU);
  torch::NoGradGuard ng;
  model->eval();
  auto logits = model->forward(ref.at("input_ids"));
  ASSERT_TRUE(logits.sizes().equals(ref.at("logits").sizes()));
  EXPECT_LT((logits - ref.at("logits")).abs().max().item<double>(), 1e-5);
}

TEST_F(DistCheckpointRun, DamagedFoldersAreRefusedWithOneLineNamingTheFileOrTensor) {
  const std::string zero = *dir_ / "zero";
  auto resume = [&](const std::string& run) {
    return testing::run_reef(pretrain_args(*dir_, run, {"--resume"}));
  };
  // The index missing.
  std::string run = run_with_step3(zero, *dir_ / "bad-index");
  const std::string ck = run + "/checkpoints/step_3";
  fs::remove(ck + "/dist_checkpoint.json");
  auto r = resume(run);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(
      line_with(r.output, "incomplete checkpoint " + ck + ": dist_checkpoint.json is missing"), "")
      << r.output;
  r = testing::run_reef({"generate", "--checkpoint", run, "--prompt", "x", "-n", "1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(line_with(r.output, "dist_checkpoint.json is missing"), "") << r.output;

  // A piece file missing, or truncated.
  run = run_with_step3(zero, *dir_ / "bad-missing");
  fs::remove(run + "/checkpoints/step_3/rank-00001.safetensors");
  r = resume(run);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(line_with(r.output, "rank-00001.safetensors is missing"), "") << r.output;
  run = run_with_step3(zero, *dir_ / "bad-truncated");
  const std::string f0 = run + "/checkpoints/step_3/rank-00000.safetensors";
  const std::string bytes = read_file(f0);
  write_file_atomic(f0, bytes.substr(0, bytes.size() / 2));
  r = resume(run);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(
      line_with(r.output, "rank-00000.safetensors is " + std::to_string(bytes.size() / 2) +
                              " bytes, expected " + std::to_string(bytes.size()) + " (truncated?)"),
      "")
      << r.output;

  // Pieces that do not cover a tensor: the index edited to drop rank 1's slice of a moment.
  run = run_with_step3(zero, *dir_ / "bad-cover");
  const std::string idx = run + "/checkpoints/step_3/dist_checkpoint.json";
  auto index = nlohmann::json::parse(read_file(idx));
  std::string victim;
  for (auto& [name, t] : index["tensors"].items())
    if (victim.empty() && t["pieces"].size() == 2) {
      victim = name;
      t["pieces"].erase(1);
    }
  ASSERT_FALSE(victim.empty());
  write_file_atomic(idx, index.dump());
  r = resume(run);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(line_with(r.output, "tensor '" + victim + "': the pieces cover "), "") << r.output;
}

}  // namespace
}  // namespace reef
