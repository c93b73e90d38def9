// The resume promise: a run killed with SIGKILL at arbitrary moments (mid-step, mid-checkpoint
// write, mid-metrics line) and resumed with --resume logs exactly the same per-step losses as
// an uninterrupted run (bitwise, CPU fp32), and ends with byte-identical weights.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

std::map<int64_t, std::pair<double, double>> read_losses(const std::string& path) {
  std::map<int64_t, std::pair<double, double>> out;  // step -> (loss, val_loss)
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    auto& e = out[j["step"].get<int64_t>()];
    if (j.contains("loss")) e.first = j["loss"].get<double>();
    if (j.contains("val_loss")) e.second = j["val_loss"].get<double>();
  }
  return out;
}

// Runs the same small pretraining twice: once straight through, once killed with SIGKILL at
// random moments (up to 8 times) and resumed each time; the logs and final files must be equal.
void expect_sigkill_resume_matches(const testing::ScratchDir& dir,
                                   const std::vector<std::string>& data_args) {
  auto args = [&](const std::string& run, bool resume) {
    std::vector<std::string> a = {testing::reef_bin(),
                                  "pretrain",
                                  "--config",
                                  "recipes/llama-tiny.yaml",
                                  "run.dir=" + run,
                                  "model.hidden_size=64",
                                  "model.n_layers=2",
                                  "data.seq_len=32",
                                  "train.micro_batch_size=4",
                                  "train.grad_accum=2",
                                  "train.max_steps=60",
                                  "train.eval_every=8",
                                  "train.eval_batches=2",
                                  "checkpoint.every=3",
                                  "checkpoint.keep_last=2",
                                  "run.threads=1",
                                  "logging.progress=off",
                                  "train.precision=fp32"};
    a.insert(a.end(), data_args.begin(), data_args.end());
    if (resume) a.push_back("--resume");
    return a;
  };
  std::string ref = dir / "ref", killed = dir / "killed";
  const auto ref_start = std::chrono::steady_clock::now();
  int rc = testing::wait_process(
      testing::spawn_process(args(ref, false), testing::source_dir(), dir / "ref.log"));
  ASSERT_EQ(rc, 0) << read_file(dir / "ref.log");
  // Kill moments fall within the uninterrupted run's own duration (at most 1.2 s), so the first
  // attempt is killed however fast this machine runs it.
  const auto ref_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - ref_start)
                          .count();
  const int longest = static_cast<int>(std::clamp<int64_t>(ref_ms * 3 / 4, 150, 1200));

  std::random_device rd;
  unsigned seed = rd();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(100, longest);
  int kills = 0, attempts = 0;
  for (;; ++attempts) {
    ASSERT_LT(attempts, 40) << "did not finish; seed " << seed;
    int pid = testing::spawn_process(args(killed, attempts > 0), testing::source_dir(),
                                     dir / "killed.log");
    bool may_kill = kills < 8;
    int ms = delay_ms(rng);
    int exit_code = -1;
    auto t0 = std::chrono::steady_clock::now();
    bool done = false;
    while (!(done = testing::try_wait_process(pid, &exit_code))) {
      if (may_kill && std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(ms)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (done) {
      ASSERT_EQ(exit_code, 0) << "seed " << seed << "\n" << read_file(dir / "killed.log");
      break;
    }
    ::kill(pid, SIGKILL);
    testing::wait_process(pid);
    ++kills;
  }
  EXPECT_GE(kills, 1) << "seed " << seed;
  std::cout << "killed " << kills << " times (seed " << seed << ")\n";

  auto a = read_losses(ref + "/metrics.jsonl"), b = read_losses(killed + "/metrics.jsonl");
  ASSERT_EQ(a.size(), b.size()) << "seed " << seed;
  for (const auto& [step, v] : a) {
    ASSERT_TRUE(b.count(step)) << "step " << step;
    EXPECT_EQ(v.first, b[step].first) << "loss at step " << step << " seed " << seed;
    EXPECT_EQ(v.second, b[step].second) << "val_loss at step " << step << " seed " << seed;
  }
  EXPECT_EQ(a.rbegin()->first, 60);
  EXPECT_EQ(read_file(ref + "/checkpoints/step_60/model.safetensors"),
            read_file(killed + "/checkpoints/step_60/model.safetensors"));
  EXPECT_EQ(read_file(ref + "/checkpoints/step_60/optimizer.safetensors"),
            read_file(killed + "/checkpoints/step_60/optimizer.safetensors"));
}

TEST(Resume, SigkillAtRandomMomentsThenResumeMatchesUninterruptedRun) {
  testing::ScratchDir dir;
  std::string text;
  for (int i = 0; i < 3000; ++i)
    text += "line " + std::to_string(i * 7919 % 1000) + " of the corpus\n\n";
  write_file_atomic(dir / "train.txt", text);
  write_file_atomic(dir / "valid.txt", text.substr(0, 4000));
  expect_sigkill_resume_matches(
      dir, {"data.train_files=[" + dir / "train.txt]", "data.valid_files=[" + dir / "valid.txt]"});
}

// Two datasets prepared with `reef data prepare`, blended by weight, split into train and
// validation documents: the same promise over the Megatron-style sample index.
void prepare_dataset(const testing::ScratchDir& dir, const std::string& name, int n_docs,
                     int salt) {
  std::string jsonl;
  for (int i = 0; i < n_docs; ++i) {
    std::string doc = name + " document " + std::to_string(i);
    for (int k = 0; k < (i * 7 + salt) % 13; ++k)
      doc += " word" + std::to_string((i * k + salt) % 50);
    jsonl += nlohmann::json({{"text", doc}}).dump() + "\n";
  }
  write_file_atomic(dir / (name + ".jsonl"), jsonl);
  auto r = testing::run_reef({"data", "prepare", "--input", dir / (name + ".jsonl"), "--tokenizer",
                              "byte", "--output", dir / name, "--append-eod"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

TEST(Resume, SigkillThenResumeOnABlendOfIndexedDatasets) {
  testing::ScratchDir dir;
  prepare_dataset(dir, "web", 1500, 1);
  prepare_dataset(dir, "code", 700, 5);
  expect_sigkill_resume_matches(
      dir,
      {"data.train_files=[]", "data.valid_files=[]",
       "data.blend=[0.7, " + dir / "web" + ", 0.3, " + dir / "code" + "]", "data.split=90,10,0"});
}

// Resuming with more steps continues the same sample order (the index is stable under its
// length); changing what shapes the order is refused, naming the setting.
TEST(Resume, IndexedDataResumeWithMoreStepsKeepsTheOrderAndDataChangesAreRefused) {
  testing::ScratchDir dir;
  prepare_dataset(dir, "web", 800, 2);
  auto args = [&](const std::string& run, int steps) {
    return std::vector<std::string>{"pretrain",
                                    "--config",
                                    "recipes/llama-tiny.yaml",
                                    "run.dir=" + run,
                                    "model.hidden_size=64",
                                    "model.n_layers=2",
                                    "data.seq_len=32",
                                    "train.micro_batch_size=4",
                                    "train.eval_every=0",
                                    "checkpoint.every=0",
                                    "run.threads=1",
                                    "logging.progress=off",
                                    "logging.every=1",
                                    "data.blend=" + dir / "web",
                                    "data.split=1",
                                    "data.train_files=[]",
                                    "data.valid_files=[]",
                                    "optim.schedule=constant",
                                    "optim.warmup_steps=0",
                                    "train.max_steps=" + std::to_string(steps)};
  };
  auto r = testing::run_reef(args(dir / "ref", 24));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = testing::run_reef(args(dir / "two", 10));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto resumed = args(dir / "two", 24);
  resumed.push_back("--resume");
  r = testing::run_reef(resumed);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto a = read_losses(dir / "ref/metrics.jsonl"), b = read_losses(dir / "two/metrics.jsonl");
  ASSERT_EQ(a.size(), 24u);
  ASSERT_EQ(b.size(), 24u);
  for (const auto& [step, v] : a) EXPECT_EQ(v.first, b[step].first) << "loss at step " << step;

  auto changed = args(dir / "two", 30);
  changed.push_back("--resume");
  changed.push_back("run.seed=99");
  r = testing::run_reef(changed);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("training data differs from checkpoint"), std::string::npos) << r.output;
  changed.pop_back();
  changed.push_back("data.seq_len=16");
  r = testing::run_reef(changed);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("data.seq_len was 32, now 16"), std::string::npos) << r.output;
  EXPECT_EQ(read_losses(dir / "two/metrics.jsonl").size(), 24u);  // nothing appended
}

// SIGTERM (as a scheduler sends before preempting) finishes the current step, saves a
// checkpoint and exits 130; --resume then completes the run.
TEST(Resume, SigtermSavesCheckpointAndExits) {
  testing::ScratchDir dir;
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "sentence " + std::to_string(i % 97) + " here\n\n";
  write_file_atomic(dir / "train.txt", text);
  std::vector<std::string> args = {testing::reef_bin(),
                                   "pretrain",
                                   "--config",
                                   "recipes/llama-tiny.yaml",
                                   "run.dir=" + dir / "run",
                                   "data.train_files=[" + dir / "train.txt]",
                                   "data.valid_files=[" + dir / "train.txt]",
                                   "train.max_steps=100000",
                                   "train.eval_every=0",
                                   "checkpoint.every=0",
                                   "run.threads=1",
                                   "logging.progress=off",
                                   "model.n_layers=2",
                                   "data.seq_len=32"};
  int pid = testing::spawn_process(args, testing::source_dir(), dir / "log");
  std::string metrics = dir / "run/metrics.jsonl";
  for (int i = 0; i < 600 && !(path_exists(metrics) && !read_file(metrics).empty()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(path_exists(metrics)) << read_file(dir / "log");
  ::kill(pid, SIGTERM);
  EXPECT_EQ(testing::wait_process(pid), 130) << read_file(dir / "log");
  auto losses = read_losses(metrics);
  int64_t last = losses.rbegin()->first;
  EXPECT_TRUE(
      path_exists(dir / ("run/checkpoints/step_" + std::to_string(last)) + "/trainer_state.json"))
      << "no checkpoint for the last logged step " << last;
  args.push_back("train.max_steps=" + std::to_string(last + 3));
  args.push_back("--resume");
  EXPECT_EQ(
      testing::wait_process(testing::spawn_process(args, testing::source_dir(), dir / "log2")), 0)
      << read_file(dir / "log2");
  EXPECT_EQ(read_losses(metrics).rbegin()->first, last + 3);
}

}  // namespace
}  // namespace reef
