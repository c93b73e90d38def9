// End-to-end CLI tests: corpus -> pretrain -> generate with the real `reef` binary, and the
// promise that bad configs and inputs fail with exit code 2, one clear line and nothing written.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

using testing::run_reef;

// A small synthetic corpus in fortune format (quotes separated by "%").
std::string make_fortune_source(const testing::ScratchDir& dir) {
  std::string src = dir / "fortunes-src";
  make_dirs(src);
  std::string body;
  const char* words[] = {"the", "cat", "sat", "on",  "a",    "mat",
                         "and", "dog", "ran", "far", "away", "home"};
  for (int i = 0; i < 400; ++i) {
    std::string q;
    for (int w = 0; w < 8 + i % 7; ++w) q += std::string(words[(i * 7 + w * 3) % 12]) + " ";
    body += q + "\n%\n";
  }
  write_file_atomic(src + "/quotes", body);
  return src;
}

std::vector<std::string> tiny_overrides(const std::string& run_dir, const std::string& data_dir) {
  return {"run.dir=" + run_dir,
          "data.train_files=[" + data_dir + "/train.jsonl]",
          "data.valid_files=[" + data_dir + "/valid.jsonl]",
          "model.hidden_size=64",
          "model.n_layers=2",
          "model.n_heads=4",
          "model.n_kv_heads=2",
          "data.seq_len=32",
          "train.micro_batch_size=4",
          "train.eval_every=10",
          "train.eval_batches=2",
          "checkpoint.every=10",
          "run.threads=1",
          "logging.progress=off"};
}

TEST(Cli, FortunesPretrainGenerate) {
  testing::ScratchDir dir;
  std::string data = dir / "data";
  auto r = run_reef({"data", "fortunes", "--source", make_fortune_source(dir), "--output", data,
                     "--valid-fraction", "0.1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> args = {"pretrain",           "--config",      "recipes/llama-tiny.yaml",
                                   "train.max_steps=30", "optim.lr=3e-3", "optim.warmup_steps=5"};
  for (auto& o : tiny_overrides(dir / "run", data)) args.push_back(o);
  r = run_reef(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // metrics.jsonl: one record per step with step and loss; validation loss falls.
  std::istringstream in(read_file(dir / "run/metrics.jsonl"));
  std::string line;
  double first_val = -1, last_val = -1;
  int64_t steps = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.contains("step"));
    if (j.contains("loss")) ++steps;
    if (j.contains("val_loss"))
      (first_val < 0 ? first_val : last_val) = j["val_loss"].get<double>();
  }
  EXPECT_EQ(steps, 30);
  EXPECT_LT(last_val, first_val - 0.5)
      << "validation loss did not fall: " << first_val << " -> " << last_val;
  EXPECT_TRUE(path_exists(dir / "run/checkpoints/step_30/model.safetensors"));
  EXPECT_TRUE(path_exists(dir / "run/config.yaml"));
  EXPECT_FALSE(list_dir(dir / "run/tb").empty());

  // Greedy generation from the run folder; identical with and without the KV cache.
  r = run_reef({"generate", "--checkpoint", dir / "run", "--prompt", "the cat", "--greedy",
                "--max-new-tokens", "30", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("the cat", 0), 0u) << r.output;
  auto r2 =
      run_reef({"generate", "--checkpoint", dir / "run/checkpoints/step_30", "--prompt", "the cat",
                "--greedy", "--max-new-tokens", "30", "--no-cache", "--threads", "1"});
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  EXPECT_EQ(r.output, r2.output);

  // A second fresh run into the same folder is refused instead of mixing runs.
  r = run_reef(args);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--resume"), std::string::npos) << r.output;
}

// The main job's pipeline as `make run` runs it, at a small scale: corpus, a BPE trained on it,
// indexed datasets prepared with it, recipes/fortunes-llama.yaml on those, and generation that
// decodes through the trained tokenizer saved in the checkpoint.
TEST(Cli, MainJobPipelineTrainedTokenizerAndIndexedData) {
  testing::ScratchDir dir;
  std::string data = dir / "data";
  auto r = run_reef({"data", "fortunes", "--source", make_fortune_source(dir), "--output", data,
                     "--valid-fraction", "0.1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_reef({"tokenizer", "train", "--input", data + "/train.jsonl", "--vocab-size", "400",
                "--output", data + "/tokenizer"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* split : {"train", "valid"}) {
    r = run_reef({"data", "prepare", "--input", data + "/" + split + ".jsonl", "--tokenizer",
                  data + "/tokenizer", "--output", data + "/" + split, "--append-eod"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  r = run_reef({"pretrain", "--config", "recipes/fortunes-llama.yaml", "run.dir=" + dir / "run",
                "data.blend=[" + data + "/train]", "data.valid_blend=[" + data + "/valid]",
                "data.tokenizer=" + data + "/tokenizer", "model.hidden_size=64", "model.n_layers=2",
                "data.seq_len=32", "train.micro_batch_size=4", "train.max_steps=40",
                "train.eval_every=20", "train.eval_batches=2", "checkpoint.every=20",
                "optim.lr=3e-3", "optim.warmup_steps=5", "run.threads=1", "logging.progress=off"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // model.vocab_size 0 took the trained tokenizer's size (at most 400: a tiny corpus may run
  // out of pairs to merge first).
  auto tok_json = nlohmann::json::parse(read_file(data + "/tokenizer/tokenizer.json"));
  const size_t trained_vocab = tok_json["model"]["vocab"].size();
  EXPECT_LE(trained_vocab, 400u);
  EXPECT_GT(trained_vocab, 280u);  // merges were learned
  EXPECT_EQ(
      nlohmann::json::parse(read_file(dir / "run/checkpoints/step_40/config.json"))["vocab_size"],
      trained_vocab);
  // The checkpoint carries the trained tokenizer: the same file as the one trained.
  EXPECT_EQ(
      nlohmann::json::parse(
          read_file(dir / "run/checkpoints/step_40/tokenizer.json"))["model"]["merges"],
      nlohmann::json::parse(read_file(data + "/tokenizer/tokenizer.json"))["model"]["merges"]);
  double first_val = -1, last_val = -1;
  std::istringstream in(read_file(dir / "run/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("val_loss"))
      (first_val < 0 ? first_val : last_val) = j["val_loss"].get<double>();
  }
  EXPECT_LT(last_val, first_val - 0.5) << first_val << " -> " << last_val;
  r = run_reef({"generate", "--checkpoint", dir / "run", "--prompt", "the cat", "--greedy",
                "--max-new-tokens", "20", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("the cat", 0), 0u) << r.output;
}

std::vector<double> step_losses(const std::string& metrics_path) {
  std::vector<double> out;
  std::istringstream in(read_file(metrics_path));
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

// Gradient accumulation is a pure batching choice: 2 x 4 sequences per step must train like
// 1 x 8 (same windows, same order), up to float rounding.
TEST(Cli, GradAccumMatchesOneBigBatch) {
  testing::ScratchDir dir;
  std::string data = dir / "data";
  ASSERT_EQ(run_reef({"data", "fortunes", "--source", make_fortune_source(dir), "--output", data})
                .exit_code,
            0);
  auto run = [&](const std::string& name, const std::string& mbs, const std::string& accum) {
    std::vector<std::string> args = {"pretrain", "--config", "recipes/llama-tiny.yaml",
                                     "train.max_steps=6"};
    for (auto& o : tiny_overrides(dir / name, data)) args.push_back(o);
    args.push_back("train.micro_batch_size=" + mbs);  // after tiny_overrides, which sets it too
    args.push_back("train.grad_accum=" + accum);
    auto r = run_reef(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return step_losses(dir / (name + "/metrics.jsonl"));
  };
  auto a = run("big", "8", "1"), b = run("accum", "4", "2");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a[i], b[i], 1e-4 * std::abs(a[i])) << "step " << i + 1;
}

// GPT-2 end to end in bf16 autocast: trains (loss falls) and saves fp32 master weights.
TEST(Cli, Gpt2Bf16Trains) {
  testing::ScratchDir dir;
  std::string data = dir / "data";
  ASSERT_EQ(run_reef({"data", "fortunes", "--source", make_fortune_source(dir), "--output", data})
                .exit_code,
            0);
  std::vector<std::string> args = {"pretrain",
                                   "--config",
                                   "recipes/gpt2-tiny.yaml",
                                   "train.max_steps=25",
                                   "train.precision=bf16",
                                   "optim.lr=3e-3"};
  for (auto& o : tiny_overrides(dir / "run", data)) args.push_back(o);
  args.push_back("model.n_kv_heads=0");  // gpt2 has no GQA
  auto r = run_reef(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto losses = step_losses(dir / "run/metrics.jsonl");
  ASSERT_EQ(losses.size(), 25u);
  EXPECT_LT(losses.back(), losses.front() - 1.0);
  // Autocast really computed in bf16: the first loss differs from an fp32 run's, slightly.
  args.push_back("train.precision=fp32");
  args.push_back("train.max_steps=1");
  args.push_back("run.dir=" + dir / "fp32");
  r = run_reef(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto fp32 = step_losses(dir / "fp32/metrics.jsonl");
  ASSERT_EQ(fp32.size(), 1u);
  EXPECT_NE(fp32[0], losses[0]);
  EXPECT_NEAR(fp32[0], losses[0], 0.05 * fp32[0]);
  std::string st = read_file(dir / "run/checkpoints/step_25/model.safetensors");
  EXPECT_NE(st.find("\"transformer.h.0.attn.c_attn.weight\":{\"dtype\":\"F32\""),
            std::string::npos);
}

// The mixtral and gemma tiny recipes train end to end: loss falls, mixtral logs its
// load-balancing loss every step, and the checkpoints are HF folders of the right arch.
TEST(Cli, MixtralAndGemmaTinyRecipesTrain) {
  testing::ScratchDir dir;
  std::string data = dir / "data";
  ASSERT_EQ(run_reef({"data", "fortunes", "--source", make_fortune_source(dir), "--output", data})
                .exit_code,
            0);
  for (const std::string arch : {"mixtral", "gemma"}) {
    SCOPED_TRACE(arch);
    std::vector<std::string> args = {"pretrain", "--config", "recipes/" + arch + "-tiny.yaml",
                                     "train.max_steps=12", "optim.lr=3e-3"};
    for (auto& o : tiny_overrides(dir / arch, data)) args.push_back(o);
    auto r = run_reef(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto losses = step_losses(dir / (arch + "/metrics.jsonl"));
    ASSERT_EQ(losses.size(), 12u);
    EXPECT_LT(losses.back(), losses.front() - 0.5);
    std::istringstream in(read_file(dir / (arch + "/metrics.jsonl")));
    int aux_steps = 0;
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (!j.contains("aux_loss")) continue;
      ++aux_steps;
      // E * sum_e f_e P_e with sum_e f_e = k = 2: near 2 when balanced, at most E * k = 8.
      EXPECT_GT(j["aux_loss"].get<double>(), 1.0) << line;
      EXPECT_LT(j["aux_loss"].get<double>(), 8.0) << line;
    }
    EXPECT_EQ(aux_steps, arch == "mixtral" ? 12 : 0);
    auto cfg = nlohmann::json::parse(read_file(dir / (arch + "/checkpoints/step_12/config.json")));
    EXPECT_EQ(cfg["model_type"], arch);
    std::string st = read_file(dir / (arch + "/checkpoints/step_12/model.safetensors"));
    if (arch == "mixtral") {
      EXPECT_EQ(cfg["num_local_experts"], 4);
      EXPECT_NE(st.find("model.layers.1.block_sparse_moe.experts.3.w2.weight"), std::string::npos);
    } else {
      EXPECT_EQ(st.find("lm_head.weight"), std::string::npos);  // tied
    }
  }
}

TEST(Cli, BadConfigExitsTwoAndWritesNothing) {
  testing::ScratchDir dir;
  std::string run_dir = dir / "run";
  struct Case {
    std::vector<std::string> extra;
    std::string needle;
  };
  std::vector<Case> cases = {
      {{"train.max_step=5"}, "did you mean 'train.max_steps'"},
      {{"optim.lr=-1"}, "optim.lr"},
      {{"model.n_heads=3"}, "model.n_heads"},
      {{"train.max_steps=abc"}, "train.max_steps"},
      {{"data.train_files=[" + dir.path() + "/missing.jsonl]"}, "missing.jsonl"},
  };
  if (!torch::cuda::is_available()) cases.push_back({{"run.device=cuda"}, "no CUDA device"});
  for (const auto& c : cases) {
    std::vector<std::string> args = {"pretrain", "--config", "recipes/llama-tiny.yaml",
                                     "run.dir=" + run_dir};
    for (auto& e : c.extra) args.push_back(e);
    auto r = run_reef(args);
    EXPECT_EQ(r.exit_code, 2) << c.needle << "\n" << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << r.output;
    EXPECT_FALSE(path_exists(run_dir)) << c.needle;
  }
  auto r = run_reef({"pretrain", "--config", dir / "nope.yaml"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("nope.yaml"), std::string::npos) << r.output;
  r = run_reef({"config", "show", "--config", "recipes/llama-tiny.yaml", "model.n_layers=3"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("n_layers: 3"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace reef
