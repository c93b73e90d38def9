// The resume promise: a run killed with SIGKILL at arbitrary moments (mid-step, mid-checkpoint
// write, mid-metrics line) and resumed with --resume logs exactly the same per-step losses as
// an uninterrupted run (bitwise, CPU fp32), and ends with byte-identical weights.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <map>
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

TEST(Resume, SigkillAtRandomMomentsThenResumeMatchesUninterruptedRun) {
  testing::ScratchDir dir;
  std::string text;
  for (int i = 0; i < 3000; ++i) text += "line " + std::to_string(i * 7919 % 1000) + " of the corpus\n\n";
  write_file_atomic(dir / "train.txt", text);
  write_file_atomic(dir / "valid.txt", text.substr(0, 4000));
  auto args = [&](const std::string& run, bool resume) {
    std::vector<std::string> a = {testing::reef_bin(), "pretrain", "--config", "recipes/llama-tiny.yaml",
                                  "run.dir=" + run, "data.train_files=[" + dir / "train.txt]",
                                  "data.valid_files=[" + dir / "valid.txt]", "model.hidden_size=64",
                                  "model.n_layers=2", "data.seq_len=32", "train.micro_batch_size=4",
                                  "train.grad_accum=2", "train.max_steps=60", "train.eval_every=8",
                                  "train.eval_batches=2", "checkpoint.every=3", "checkpoint.keep_last=2",
                                  "run.threads=1", "logging.progress=off", "train.precision=fp32"};
    if (resume) a.push_back("--resume");
    return a;
  };
  std::string ref = dir / "ref", killed = dir / "killed";
  int rc = testing::wait_process(testing::spawn_process(args(ref, false), testing::source_dir(), dir / "ref.log"));
  ASSERT_EQ(rc, 0) << read_file(dir / "ref.log");

  std::random_device rd;
  unsigned seed = rd();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(100, 1200);
  int kills = 0, attempts = 0;
  for (;; ++attempts) {
    ASSERT_LT(attempts, 40) << "did not finish; seed " << seed;
    int pid = testing::spawn_process(args(killed, attempts > 0), testing::source_dir(), dir / "killed.log");
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

// SIGTERM (as a scheduler sends before preempting) finishes the current step, saves a
// checkpoint and exits 130; --resume then completes the run.
TEST(Resume, SigtermSavesCheckpointAndExits) {
  testing::ScratchDir dir;
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "sentence " + std::to_string(i % 97) + " here\n\n";
  write_file_atomic(dir / "train.txt", text);
  std::vector<std::string> args = {testing::reef_bin(), "pretrain", "--config", "recipes/llama-tiny.yaml",
                                   "run.dir=" + dir / "run", "data.train_files=[" + dir / "train.txt]",
                                   "data.valid_files=[" + dir / "train.txt]", "train.max_steps=100000",
                                   "train.eval_every=0", "checkpoint.every=0", "run.threads=1",
                                   "logging.progress=off", "model.n_layers=2", "data.seq_len=32"};
  int pid = testing::spawn_process(args, testing::source_dir(), dir / "log");
  std::string metrics = dir / "run/metrics.jsonl";
  for (int i = 0; i < 600 && !(path_exists(metrics) && !read_file(metrics).empty()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(path_exists(metrics)) << read_file(dir / "log");
  ::kill(pid, SIGTERM);
  EXPECT_EQ(testing::wait_process(pid), 130) << read_file(dir / "log");
  auto losses = read_losses(metrics);
  int64_t last = losses.rbegin()->first;
  EXPECT_TRUE(path_exists(dir / ("run/checkpoints/step_" + std::to_string(last)) + "/trainer_state.json"))
      << "no checkpoint for the last logged step " << last;
  args.push_back("train.max_steps=" + std::to_string(last + 3));
  args.push_back("--resume");
  EXPECT_EQ(testing::wait_process(testing::spawn_process(args, testing::source_dir(), dir / "log2")), 0)
      << read_file(dir / "log2");
  EXPECT_EQ(read_losses(metrics).rbegin()->first, last + 3);
}

}  // namespace
}  // namespace reef
