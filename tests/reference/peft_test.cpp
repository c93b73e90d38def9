// LoRA adapters against Hugging Face peft, both ways, on tiny random llama and qwen2 models
// (tests/reference/peft_reference.py): adapters peft made (q/v, all-linear, a regex; plain and
// rsLoRA; random non-zero A and B) load in Reef with the same float32 logits within 1e-5, and
// Reef's merge_lora gives the logits of peft's merge_and_unload. Then adapters Reef made load in
// peft (PeftModel.from_pretrained) with no missing or unexpected keys and the same logits, merged
// and not, and a merged model Reef saves as a plain folder loads in transformers with the merged
// logits.
#include <gtest/gtest.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/peft_io.h"
#include "reef/checkpoint/safetensors.h"
#include "reef/models/lora.h"
#include "testing/testing.h"

namespace reef {
namespace {

constexpr double kTolerance = 1e-5;

class PeftReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::cached_python_output(
        testing::source_dir() + "/tests/reference/peft_reference.py", {"make"});
    std::istringstream in(read_file(dir_ + "/cases.txt"));
    for (std::string base, adapter; in >> base >> adapter;) cases_.emplace_back(base, adapter);
  }
  static std::string dir_;
  static std::vector<std::pair<std::string, std::string>> cases_;  // (base, adapter case)
};

std::string PeftReference::dir_;
std::vector<std::pair<std::string, std::string>> PeftReference::cases_;

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

std::set<std::string> param_names(CausalLM& model) {
  std::set<std::string> out;
  for (const auto& p : model->named_parameters()) out.insert(p.key());
  return out;
}

TEST_F(PeftReference, PeftAdaptersLoadInReefWithPeftsLogits) {
  ASSERT_EQ(cases_.size(), 10u);
  for (const auto& [base, adapter] : cases_) {
    SCOPED_TRACE(base + " " + adapter);
    const std::string folder = dir_ + "/" + base + "_" + adapter;
    CausalLM model = load_model_folder(dir_ + "/" + base, torch::kCPU);
    const auto base_names = param_names(model);
    const LoraConfig cfg = load_adapter(folder, model);
    auto json = nlohmann::json::parse(read_file(folder + "/adapter_config.json"));
    EXPECT_EQ(cfg.layer.r, json.at("r").get<int64_t>());
    EXPECT_EQ(cfg.layer.alpha, json.at("lora_alpha").get<double>());
    EXPECT_EQ(cfg.layer.use_rslora, json.at("use_rslora").get<bool>());
    // Every parameter of the adapter file is a LoRA parameter of the model now.
    auto lora = lora_named_parameters(model);
    EXPECT_EQ(lora.size(), load_safetensors(folder + "/adapter_model.safetensors").size());
    for (const auto& p : model->named_parameters())
      EXPECT_EQ(p.value().requires_grad(), !base_names.count(p.key())) << p.key();

    model->eval();
    auto ref = load_safetensors(folder + "/reference.safetensors");
    torch::NoGradGuard no_grad;
    auto logits = model(ref.at("input_ids"));
    const double diff = max_diff(logits, ref.at("logits"));
    std::cout << base << " " << adapter << ": max |logits - peft| = " << diff << "\n";
    EXPECT_LE(diff, kTolerance);

    EXPECT_GT(merge_lora(model), 0);
    EXPECT_EQ(param_names(model), base_names);
    auto merged = model(ref.at("input_ids"));
    EXPECT_LE(max_diff(merged, ref.at("merged_logits")), kTolerance);
    // Merging moves the logits by float rounding only, no more than it moves peft's (which
    // reaches ~7e-5 with rsLoRA's large scaling on all-linear targets).
    EXPECT_LE(max_diff(merged, logits),
              max_diff(ref.at("merged_logits"), ref.at("logits")) + kTolerance);
  }
}

// The adapter changes the logits noticeably, so the comparisons above do test it.
TEST_F(PeftReference, AdaptersChangeTheLogits) {
  for (const auto& [base, adapter] : cases_) {
    CausalLM model = load_model_folder(dir_ + "/" + base, torch::kCPU);
    model->eval();
    auto ref = load_safetensors(dir_ + "/" + base + "_" + adapter + "/reference.safetensors");
    torch::NoGradGuard no_grad;
    EXPECT_GT(max_diff(model(ref.at("input_ids")), ref.at("logits")), 1e-2) << base << adapter;
  }
}

struct ReefCase {
  std::string base, name;
  LoraConfig cfg;
};

std::vector<ReefCase> reef_cases() {
  auto make = [](std::vector<std::string> targets, std::string regex, int64_t r, double alpha,
                 bool rslora) {
    LoraConfig c;
    c.target_modules = std::move(targets);
    c.target_regex = std::move(regex);
    c.layer.r = r;
    c.layer.alpha = alpha;
    c.layer.use_rslora = rslora;
    c.layer.dropout = 0.1;
    return c;
  };
  std::vector<ReefCase> out;
  for (const std::string base : {"llama", "qwen2"}) {
    out.push_back({base, "qv", make({"q_proj", "v_proj"}, "", 4, 8, false)});
    out.push_back({base, "all_linear_rslora", make({"all-linear"}, "", 6, 12, true)});
    out.push_back({base, "regex", make({}, R"(.*\.(o_proj|gate_proj))", 2, 3.5, false)});
  }
  return out;
}

TEST_F(PeftReference, ReefAdaptersLoadInPeftWithTheSameLogits) {
  ASSERT_FALSE(cases_.empty());
  testing::ScratchDir scratch;
  auto ids = load_safetensors(dir_ + "/llama_qv/reference.safetensors").at("input_ids");
  nlohmann::json jobs = {{"adapters", nlohmann::json::array()},
                         {"merged", nlohmann::json::array()}};
  int seed = 0;
  for (auto& c : reef_cases()) {
    SCOPED_TRACE(c.base + " " + c.name);
    CausalLM model = load_model_folder(dir_ + "/" + c.base, torch::kCPU);
    const auto base_names = param_names(model);
    auto trainable = apply_lora(model, c.cfg);
    ASSERT_FALSE(trainable.empty());
    EXPECT_EQ(trainable.size(), lora_named_parameters(model).size());
    for (const auto& p : model->named_parameters())
      EXPECT_EQ(p.value().requires_grad(), !base_names.count(p.key())) << p.key();
    torch::manual_seed(900 + seed++);
    {
      torch::NoGradGuard no_grad;
      for (auto& t : trainable) t.normal_(0.0, 0.2);
    }
    const std::string out = scratch / (c.base + "_" + c.name);
    make_dirs(out);
    save_adapter(out, model, c.cfg, "tiny-" + c.base);
    model->eval();
    torch::NoGradGuard no_grad;
    auto logits = model(ids);
    merge_lora(model);
    auto merged = model(ids);  // compared in Python with peft's merge_and_unload
    save_safetensors(out + "/reef_logits.safetensors",
                     {{"input_ids", ids}, {"logits", logits}, {"merged_logits", merged}});
    make_dirs(out + "_merged_model");
    save_model_folder(out + "_merged_model", model, nullptr);
    jobs["adapters"].push_back({dir_ + "/" + c.base, out, out + "/reef_logits.safetensors"});
    jobs["merged"].push_back({out + "_merged_model", out + "/reef_logits.safetensors"});
  }
  // One Python process checks every adapter in peft and every merged folder in transformers.
  write_file_atomic(scratch / "jobs.json", jobs.dump());
  auto r = testing::run_python({testing::source_dir() + "/tests/reference/peft_reference.py",
                                "verify-jobs", scratch / "jobs.json"});
  std::cout << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// `reef convert --adapter`: the merged folder loads in transformers with the logits of peft's
// merge_and_unload; a bad adapter is exit code 2 with nothing written.
TEST_F(PeftReference, ConvertMergesAPeftAdapter) {
  ASSERT_FALSE(cases_.empty());
  testing::ScratchDir scratch;
  std::vector<std::string> verify = {testing::source_dir() + "/tests/reference/peft_reference.py",
                                     "verify-merged"};
  for (const std::string base : {"llama", "qwen2"}) {
    const std::string adapter = dir_ + "/" + base + "_all_linear_rslora";
    const std::string out = scratch / (base + "_merged");
    auto r = testing::run_reef(
        {"convert", "--model", dir_ + "/" + base, "--adapter", adapter, "--out", out});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    verify.insert(verify.end(), {out, adapter + "/reference.safetensors"});
  }
  auto m = testing::run_python(verify);
  std::cout << m.output;
  EXPECT_EQ(m.exit_code, 0) << m.output;

  // An adapter using a peft feature Reef does not implement.
  const std::string bad = scratch / "bad_adapter";
  make_dirs(bad);
  auto cfg = nlohmann::json::parse(read_file(dir_ + "/llama_qv/adapter_config.json"));
  cfg["use_dora"] = true;
  write_file_atomic(bad + "/adapter_config.json", cfg.dump());
  write_file_atomic(bad + "/adapter_model.safetensors",
                    read_file(dir_ + "/llama_qv/adapter_model.safetensors"));
  auto r = testing::run_reef(
      {"convert", "--model", dir_ + "/llama", "--adapter", bad, "--out", scratch / "never"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("use_dora"), std::string::npos) << r.output;
  EXPECT_FALSE(path_exists(scratch / "never"));
}

}  // namespace
}  // namespace reef
