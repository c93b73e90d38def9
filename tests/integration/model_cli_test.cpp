// Hugging Face model folders as `--model`: `reef generate` matches transformers' greedy decoding
// token for token, `reef pretrain --model` starts from the folder's weights (step-0 validation
// loss equals transformers' on the same windows), conflicting model keys are refused, GPT-2
// folders with the Hub's key names load, and unsupported architectures are usage errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/safetensors.h"
#include "testing/testing.h"

namespace reef {
namespace {

using testing::run_reef;

const std::string& reference_dir() {
  static const std::string dir = testing::cached_python_output(
      testing::source_dir() + "/tests/integration/model_cli_reference.py", {"make"});
  return dir;
}

std::vector<int64_t> parse_ids(const std::string& text) {
  std::istringstream in(text);
  std::vector<int64_t> ids;
  int64_t x;
  while (in >> x) ids.push_back(x);
  return ids;
}

class ModelCli : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelCli, GenerateMatchesTransformersGreedy) {
  const std::string dir = reference_dir() + "/" + GetParam();
  auto expected = nlohmann::json::parse(read_file(dir + "/expected.json"));
  auto r = run_reef({"generate", "--model", dir, "--prompt", expected["prompt"].get<std::string>(),
                     "--greedy", "--max-new-tokens", "16", "--print-ids", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The ids line is the last one (logs go before it).
  std::string out = r.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  auto got = parse_ids(out.substr(out.find_last_of('\n') + 1));
  auto want = expected["greedy_ids"].get<std::vector<int64_t>>();
  const int64_t eos = expected["eos"].get<int64_t>();
  for (auto* v : {&got, &want})  // transformers keeps a final eos; Reef may not
    if (!v->empty() && v->back() == eos) v->pop_back();
  EXPECT_EQ(got, want) << r.output;
  // In bfloat16: the llama family computes op for op as transformers does in bf16 (see
  // HfLogits), so greedy decoding agrees token for token there too. GPT-2's fused gelu rounds
  // differently in bf16, so only the run itself is checked for it.
  auto rb = run_reef({"generate", "--model", dir, "--prompt", expected["prompt"].get<std::string>(),
                      "--greedy", "--max-new-tokens", "8", "--print-ids", "--threads", "1",
                      "--dtype", "bfloat16"});
  ASSERT_EQ(rb.exit_code, 0) << rb.output;
  if (GetParam() == "llama") {
    std::string outb = rb.output;
    while (!outb.empty() && outb.back() == '\n') outb.pop_back();
    auto got_bf16 = parse_ids(outb.substr(outb.find_last_of('\n') + 1));
    auto want_bf16 = expected["greedy_ids_bf16"].get<std::vector<int64_t>>();
    for (auto* v : {&got_bf16, &want_bf16})
      if (!v->empty() && v->back() == eos) v->pop_back();
    EXPECT_EQ(got_bf16, want_bf16) << rb.output;
  }
  // --checkpoint is the same option.
  auto r2 =
      run_reef({"generate", "--checkpoint", dir, "--prompt", expected["prompt"].get<std::string>(),
                "--greedy", "--max-new-tokens", "16", "--print-ids", "--threads", "1"});
  EXPECT_EQ(r2.output, r.output);
}

std::vector<std::string> pretrain_args(const std::string& model, const std::string& run) {
  const std::string ref = reference_dir();
  return {"pretrain",
          "--model",
          model,
          "run.dir=" + run,
          "data.train_files=[" + ref + "/train.jsonl]",
          "data.valid_files=[" + ref + "/valid.jsonl]",
          "data.seq_len=16",
          "train.micro_batch_size=2",
          "train.eval_batches=1",
          "train.eval_every=3",
          "train.max_steps=3",
          "run.threads=1",
          "logging.progress=off"};
}

TEST_P(ModelCli, PretrainStartsFromFolderWeights) {
  testing::ScratchDir tmp;
  const std::string dir = reference_dir() + "/" + GetParam();
  auto expected = nlohmann::json::parse(read_file(dir + "/expected.json"));
  auto r = run_reef(pretrain_args(dir, tmp / "run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream in(read_file(tmp / "run/metrics.jsonl"));
  std::string line;
  double first_val = -1;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("val_loss") && first_val < 0) {
      EXPECT_EQ(j["step"].get<int64_t>(), 0) << line;
      first_val = j["val_loss"].get<double>();
    }
  }
  EXPECT_NEAR(first_val, expected["val_loss"].get<double>(), 1e-4) << r.output;
  // The checkpoint is the same architecture with the folder's tokenizer, and resumes from itself.
  auto saved = nlohmann::json::parse(read_file(tmp / "run/checkpoints/step_3/config.json"));
  auto orig = nlohmann::json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(saved["vocab_size"], orig["vocab_size"]);
  EXPECT_TRUE(path_exists(tmp / "run/checkpoints/step_3/tokenizer.json"));
  auto args = pretrain_args(dir, tmp / "run");
  for (auto& a : args)
    if (a == "train.max_steps=3") a = "train.max_steps=5";
  args.push_back("--resume");
  r = run_reef(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(path_exists(tmp / "run/checkpoints/step_5/model.safetensors")) << r.output;
}

// `reef convert` to half precision, sharded: transformers loads the result cleanly and finds
// exactly the weights it would get by casting the source itself.
TEST_P(ModelCli, ConvertHalfShardedLoadsInTransformers) {
  testing::ScratchDir tmp;
  const std::string dir = reference_dir() + "/" + GetParam();
  std::vector<std::string> check = {
      testing::source_dir() + "/tests/integration/model_cli_reference.py", "check-convert", dir};
  for (const std::string dtype : {"bfloat16", "float16"}) {
    const std::string out = tmp / ("conv_" + dtype);
    auto r = run_reef(
        {"convert", "--model", dir, "--out", out, "--dtype", dtype, "--max-shard-size", "20KB"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(path_exists(out + "/model.safetensors.index.json")) << r.output;
    EXPECT_FALSE(path_exists(out + "/model.safetensors")) << r.output;
    check.push_back(out);
    check.push_back(dtype);
  }
  auto checked = testing::run_python(check);
  ASSERT_EQ(checked.exit_code, 0) << checked.output;
  // Shards of 20 kB over ~100 kB of half-precision weights: several files each.
  for (size_t at = 0, n = 0; n < 2; ++n) {
    at = checked.output.find("ok ", at);
    ASSERT_NE(at, std::string::npos) << checked.output;
    at += 3;
    EXPECT_GT(std::stoi(checked.output.substr(at)), 2) << checked.output;
  }
  // Back to float32 in one file ("auto" keeps the stored dtype): the bf16 values, widened.
  const std::string back = tmp / "back";
  auto r =
      run_reef({"convert", "--model", tmp / "conv_bfloat16", "--out", back, "--dtype", "auto"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto cfg = nlohmann::json::parse(read_file(back + "/config.json"));
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16") << "auto keeps the stored dtype";
  r = run_reef({"convert", "--model", tmp / "conv_bfloat16", "--out", back, "--dtype", "fp32",
                "--overwrite"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  cfg = nlohmann::json::parse(read_file(back + "/config.json"));
  EXPECT_EQ(cfg["torch_dtype"], "float32");
  EXPECT_TRUE(path_exists(back + "/model.safetensors"));
  EXPECT_FALSE(path_exists(back + "/model.safetensors.index.json"));
  CausalLM widened = load_model_folder(back, torch::kCPU);
  CausalLM half = load_model_folder(tmp / "conv_bfloat16", torch::kCPU, torch::kBFloat16);
  auto hp = half->named_parameters();
  for (const auto& p : widened->named_parameters()) {
    EXPECT_EQ(p.value().scalar_type(), torch::kFloat);
    EXPECT_EQ(hp[p.key()].scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(p.value(), hp[p.key()].to(torch::kFloat))) << p.key();
  }
}

TEST(ModelCliErrors, ConvertRefusesBadArgumentsAndWritesNothing) {
  testing::ScratchDir tmp;
  const std::string dir = reference_dir() + "/llama";
  struct Case {
    std::vector<std::string> extra;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"--dtype", "int8"}, "--dtype: unknown dtype 'int8'"},
           {{"--max-shard-size", "5XB"}, "--max-shard-size: '5XB' is not a size"},
           {{"--max-shard-size", "0"}, "--max-shard-size: the size must be positive"}}) {
    std::vector<std::string> args = {"convert", "--model", dir, "--out", tmp / "out"};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    auto r = run_reef(args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << r.output;
    EXPECT_TRUE(list_dir(tmp.path()).empty()) << r.output;
  }
  // An existing --out is kept unless --overwrite; the source is never the destination.
  make_dirs(tmp / "out");
  write_file_atomic(tmp / "out/keep.txt", "x");
  auto r = run_reef({"convert", "--model", dir, "--out", tmp / "out"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(tmp / "out/keep.txt"), "x");
  r = run_reef({"convert", "--model", dir, "--out", dir, "--overwrite"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("is the source folder"), std::string::npos) << r.output;
  EXPECT_TRUE(path_exists(dir + "/model.safetensors"));
  // A broken source (a truncated weight file) fails without creating --out or leaving temp files.
  const std::string bad = tmp / "bad";
  make_dirs(bad);
  for (const char* f : {"config.json", "tokenizer.json"})
    write_file_atomic(bad + "/" + f, read_file(dir + "/" + f));
  std::string weights = read_file(dir + "/model.safetensors");
  write_file_atomic(bad + "/model.safetensors", weights.substr(0, weights.size() / 2));
  r = run_reef({"convert", "--model", bad, "--out", tmp / "out2"});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
  auto left = list_dir(tmp.path());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"bad", "out"})) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Archs, ModelCli, ::testing::Values("llama", "gpt2", "mixtral", "gemma"));

TEST(ModelCliErrors, ConflictingModelKeyRefused) {
  testing::ScratchDir tmp;
  const std::string dir = reference_dir() + "/llama";
  auto args = pretrain_args(dir, tmp / "run");
  args.push_back("model.hidden_size=64");
  auto r = run_reef(args);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.hidden_size=64"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("command line"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model.hidden_size=32"), std::string::npos) << r.output;
  EXPECT_FALSE(path_exists(tmp / "run")) << r.output;
  // Agreeing and "auto" values are accepted.
  args = pretrain_args(dir, tmp / "run2");
  for (const char* kv : {"model.hidden_size=32", "model.arch=llama", "train.max_steps=1"})
    args.push_back(kv);
  r = run_reef(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(ModelCliErrors, UnsupportedArchitecture) {
  testing::ScratchDir tmp;
  for (const auto& [field, value] : std::vector<std::pair<std::string, std::string>>{
           {"model_type", "bert"}, {"architectures", "GPT2ForTokenClassification"}}) {
    std::string dir = tmp / ("m_" + field);
    make_dirs(dir);
    auto cfg = nlohmann::json::parse(read_file(reference_dir() + "/gpt2/config.json"));
    if (field == "model_type")
      cfg["model_type"] = value;
    else
      cfg["architectures"] = {value};
    write_file_atomic(dir + "/config.json", cfg.dump());
    auto r = run_reef({"generate", "--model", dir, "--prompt", "x"});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(value), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("supported"), std::string::npos) << r.output;
  }
}

TEST(ModelCliHub, Gpt2HubNamesLoadWithTransformersLogits) {
  const std::string dir = reference_dir() + "/gpt2_hub";
  CausalLM model = load_model_folder(dir, torch::kCPU);
  auto ref = load_safetensors(dir + "/reference.safetensors");
  torch::NoGradGuard ng;
  auto logits = model->forward(ref.at("input_ids"));
  EXPECT_LT((logits - ref.at("logits")).abs().max().item<double>(), 1e-5);
  // Only the known buffers are skipped: any other stray tensor is still an error.
  testing::ScratchDir tmp;
  auto tensors = load_safetensors(dir + "/model.safetensors");
  tensors.emplace("h.0.attn.extra", torch::zeros({1}));
  std::vector<std::pair<std::string, torch::Tensor>> list(tensors.begin(), tensors.end());
  save_safetensors(tmp / "model.safetensors", list, {});
  EXPECT_THROW(load_model_weights(model, tmp / "model.safetensors"), Error);
}

}  // namespace
}  // namespace reef
