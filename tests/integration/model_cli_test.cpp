// Hugging Face model folders as `--model`: `reef generate` matches transformers' greedy decoding
// token for token, `reef pretrain --model` starts from the folder's weights (step-0 validation
// loss equals transformers' on the same windows), conflicting model keys are refused, GPT-2
// folders with the Hub's key names load, and unsupported architectures are usage errors.
#include <gtest/gtest.h>

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
  static const std::string dir =
      testing::cached_python_output(testing::source_dir() + "/tests/integration/model_cli_reference.py",
                                    {"make"});
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
  // --checkpoint is the same option.
  auto r2 = run_reef({"generate", "--checkpoint", dir, "--prompt", expected["prompt"].get<std::string>(),
                      "--greedy", "--max-new-tokens", "16", "--print-ids", "--threads", "1"});
  EXPECT_EQ(r2.output, r.output);
}

std::vector<std::string> pretrain_args(const std::string& model, const std::string& run) {
  const std::string ref = reference_dir();
  return {"pretrain", "--model", model, "run.dir=" + run,
          "data.train_files=[" + ref + "/train.jsonl]", "data.valid_files=[" + ref + "/valid.jsonl]",
          "data.seq_len=16", "train.micro_batch_size=2", "train.eval_batches=1",
          "train.eval_every=3", "train.max_steps=3", "run.threads=1", "logging.progress=off"};
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
           {"model_type", "bert"}, {"architectures", "GPT2ForSequenceClassification"}}) {
    std::string dir = tmp / ("m_" + field);
    make_dirs(dir);
    auto cfg = nlohmann::json::parse(read_file(reference_dir() + "/gpt2/config.json"));
    if (field == "model_type") cfg["model_type"] = value;
    else cfg["architectures"] = {value};
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
