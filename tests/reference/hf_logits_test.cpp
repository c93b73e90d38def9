// Reef against Hugging Face transformers on tiny random models of every supported architecture
// (tests/reference/hf_make_tiny.py builds them): config.json -> model_config_from_hf, weights from
// model.safetensors, float32 logits equal within 1e-5 (full pass and KV-cached decoding). Then
// the other direction: the folders Reef writes (hf_config_json + named_parameters) load in
// transformers with no missing or unexpected weights and give the same logits. Then the same
// models saved by transformers sharded (max_shard_size="20KB") and in bf16/fp16, loaded with
// Reef's load_model_folder into float32 (reference: transformers in float32 on the upcast
// weights, and both running in the half precision itself within 1e-2 of the largest logit), and
// Reef's own sharded folders (save_model_folder with small shards) in transformers.
// For Mixtral also the training objective: the load-balancing aux loss and the total loss
// (CE + router_aux_loss_coef * aux) equal MixtralForCausalLM's with labels and router logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <set>
#include <sstream>

#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/safetensors.h"
#include "reef/checkpoint/sharded.h"
#include "reef/models/causal_lm.h"
#include "reef/models/hf_config.h"
#include "testing/testing.h"

namespace reef {
namespace {

constexpr double kTolerance = 1e-5;
// Relative to the largest logit, for models run in bf16/fp16 on both sides.
constexpr double kHalfTolerance = 1e-2;

class HfLogits : public ::testing::Test {
 protected:
  // The transformers-made folders are built once per build and shared read-only by the tests
  // (ctest runs each in its own process); what a test writes goes to its own ScratchDir.
  static void SetUpTestSuite() {
    dir_ = testing::cached_python_output(testing::source_dir() + "/tests/reference/hf_make_tiny.py",
                                         {"make"});
    std::istringstream in(read_file(dir_ + "/cases.txt"));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) cases_.push_back(line);
    }
    std::istringstream vin(read_file(dir_ + "/variants.txt"));
    for (std::string line; std::getline(vin, line);) {
      if (!line.empty()) variants_.push_back(line);
    }
  }
  static std::string dir_;
  static std::vector<std::string> cases_;
  static std::vector<std::string> variants_;  // <case>_{sharded,bf16,fp16,bf16_sharded,...}
};

std::string HfLogits::dir_;
std::vector<std::string> HfLogits::cases_;
std::vector<std::string> HfLogits::variants_;

// Builds the model from <folder>/config.json and copies every tensor of model.safetensors in,
// requiring an exact one-to-one match of names and shapes.
CausalLM load_hf_folder(const std::string& folder) {
  const std::string config_path = folder + "/config.json";
  auto cfg = model_config_from_hf(nlohmann::json::parse(read_file(config_path)), config_path);
  CausalLM model(cfg);
  auto tensors = load_safetensors(folder + "/model.safetensors");
  std::set<std::string> unused;
  for (const auto& t : tensors) unused.insert(t.first);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    auto it = tensors.find(p.key());
    if (it == tensors.end()) {
      ADD_FAILURE() << folder << ": no tensor for parameter " << p.key();
      continue;
    }
    EXPECT_EQ(it->second.sizes(), p.value().sizes()) << p.key();
    p.value().copy_(it->second);
    unused.erase(p.key());
  }
  for (const auto& name : unused) ADD_FAILURE() << folder << ": unused tensor " << name;
  return model;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST_F(HfLogits, EveryArchitectureMatchesTransformers) {
  ASSERT_EQ(cases_.size(), 11u);
  for (const auto& name : cases_) {
    SCOPED_TRACE(name);
    const std::string folder = dir_ + "/" + name;
    auto model = load_hf_folder(folder);
    model->eval();
    auto ref = load_safetensors(folder + "/reference.safetensors");
    const auto& ids = ref.at("input_ids");
    const auto& expected = ref.at("logits");
    torch::NoGradGuard no_grad;
    auto logits = model(ids);
    ASSERT_EQ(logits.sizes(), expected.sizes());
    const double diff = max_diff(logits, expected);
    std::cout << name << ": max |logits - transformers| = " << diff << " (logit scale "
              << expected.abs().max().item<double>() << ")\n";
    EXPECT_LE(diff, kTolerance);

    // Prefill 5 tokens, then decode one at a time.
    KVCache cache;
    std::vector<torch::Tensor> steps = {model(ids.slice(1, 0, 5), &cache)};
    for (int64_t t = 5; t < ids.size(1); ++t)
      steps.push_back(model(ids.slice(1, t, t + 1), &cache));
    EXPECT_LE(max_diff(torch::cat(steps, 1), expected), kTolerance);
  }
}

TEST_F(HfLogits, MixtralAuxAndTotalLossMatchTransformers) {
  int moe_cases = 0;
  for (const auto& name : cases_) {
    const std::string folder = dir_ + "/" + name;
    auto ref = load_safetensors(folder + "/reference.safetensors");
    if (!ref.count("aux_loss")) continue;
    SCOPED_TRACE(name);
    ++moe_cases;
    auto model = load_hf_folder(folder);
    ModelConfig cfg = model->config();
    ASSERT_GT(cfg.n_experts, 0);
    ASSERT_FALSE(model->uses_aux_loss());  // config.json has output_router_logits false
    cfg.output_router_logits = true;
    CausalLM with_aux(cfg);
    {
      torch::NoGradGuard no_grad;
      auto src = model->named_parameters();
      for (auto& p : with_aux->named_parameters()) p.value().copy_(src[p.key()]);
    }
    with_aux->eval();
    ASSERT_TRUE(with_aux->uses_aux_loss());
    torch::NoGradGuard no_grad;
    const auto& ids = ref.at("input_ids");
    auto out = with_aux->forward_train(ids.slice(1, 0, ids.size(1)));
    EXPECT_LE(max_diff(out.logits, ref.at("logits")), kTolerance);
    ASSERT_TRUE(out.aux_loss.defined());
    const double aux = out.aux_loss.item<double>();
    const double want_aux = ref.at("aux_loss").item<double>();
    std::cout << name << ": aux_loss " << aux << " (transformers " << want_aux << ")\n";
    EXPECT_NEAR(aux, want_aux, 1e-6);
    // Labels = input_ids: transformers shifts them, so logits [:, :-1] predict ids [:, 1:].
    const int64_t T = ids.size(1);
    auto loss =
        causal_lm_loss(cfg, out.logits.slice(1, 0, T - 1), ids.slice(1, 1, T), out.aux_loss);
    std::cout << name << ": loss " << loss.item<double>() << " (transformers "
              << ref.at("loss").item<double>() << ")\n";
    EXPECT_NEAR(loss.item<double>(), ref.at("loss").item<double>(), 1e-5);
    // Without the aux term the loss is the plain CE, which differs by coef * aux.
    auto plain = causal_lm_loss(cfg, out.logits.slice(1, 0, T - 1), ids.slice(1, 1, T));
    EXPECT_NEAR((loss - plain).item<double>(), cfg.router_aux_loss_coef * want_aux, 1e-6);
  }
  EXPECT_EQ(moe_cases, 1);
}

TEST_F(HfLogits, FoldersReefWritesLoadInTransformers) {
  ASSERT_FALSE(cases_.empty());
  testing::ScratchDir scratch;
  const std::string out = scratch / "reef";
  for (const auto& name : cases_) {
    const std::string folder = dir_ + "/" + name;
    auto model = load_hf_folder(folder);
    make_dirs(out + "/" + name);
    write_file_atomic(out + "/" + name + "/config.json", hf_config_json(model->config()).dump(2));
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& p : model->named_parameters())
      tensors.emplace_back(p.key(), p.value().detach());
    save_safetensors(out + "/" + name + "/model.safetensors", tensors, {{"format", "pt"}});
  }
  auto r = testing::run_python(
      {testing::source_dir() + "/tests/reference/hf_make_tiny.py", "verify", out, dir_});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::cout << r.output;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TEST_F(HfLogits, ShardedAndHalfPrecisionFoldersLoad) {
  ASSERT_EQ(variants_.size(), cases_.size() * 5);
  int sharded = 0, half = 0;
  for (const auto& name : variants_) {
    SCOPED_TRACE(name);
    const std::string folder = dir_ + "/" + name;
    const bool is_sharded = ends_with(name, "sharded");
    ASSERT_EQ(path_exists(folder + "/" + kWeightsIndexFile), is_sharded);
    ASSERT_NE(path_exists(folder + "/" + kWeightsFile), is_sharded);
    if (is_sharded) {
      std::set<std::string> shards;
      for (const auto& [t, f] : read_weight_index(folder + "/" + kWeightsIndexFile).weight_map)
        shards.insert(f);
      EXPECT_GE(shards.size(), 2u);
      ++sharded;
    }
    // The files really hold the dtype the variant is named for.
    const auto want = name.find("bf16") != std::string::npos   ? torch::kBFloat16
                      : name.find("fp16") != std::string::npos ? torch::kHalf
                                                               : torch::kFloat;
    WeightFiles files = WeightFiles::open(folder);
    for (const auto& t : files.names()) ASSERT_EQ(files.file_of(t).dtype(t), want) << t;
    CausalLM model = load_model_folder(folder, torch::kCPU);
    model->eval();
    for (const auto& p : model->parameters()) ASSERT_EQ(p.scalar_type(), torch::kFloat);
    auto ref = load_safetensors(folder + "/reference.safetensors");
    torch::NoGradGuard no_grad;
    auto logits = model(ref.at("input_ids"));
    ASSERT_EQ(logits.sizes(), ref.at("logits").sizes());
    const double diff = max_diff(logits, ref.at("logits"));
    std::cout << name << ": max |logits - transformers| = " << diff << "\n";
    EXPECT_LE(diff, kTolerance);
    if (want != torch::kFloat) {
      ++half;
      // Run in the half precision itself, against transformers doing the same: the two differ
      // only by the rounding of each op's output, so the bound is bf16/fp16 sized, not 1e-5.
      CausalLM native = load_model_folder(folder, torch::kCPU, want);
      native->eval();
      for (const auto& p : native->parameters()) ASSERT_EQ(p.scalar_type(), want);
      auto native_logits = native(ref.at("input_ids"));
      ASSERT_EQ(native_logits.scalar_type(), want);
      const double ndiff = max_diff(native_logits.to(torch::kFloat), ref.at("native_logits"));
      const double scale = ref.at("native_logits").abs().max().item<double>();
      std::cout << name << ": in " << c10::toString(want)
                << ", max |logits - transformers| = " << ndiff << " (max |logit| " << scale
                << ")\n";
      // GPT-2's gelu_new rounds differently (below), so its bound is twice as wide.
      const bool gelu_new = name.rfind("gpt2", 0) == 0;
      EXPECT_LE(ndiff, (gelu_new ? 2 : 1) * kHalfTolerance * std::max(1.0, scale)) << name;
      // The dense llama family and gemma run op for op as transformers does (linear layers as one
      // fused addmm, nn/linear.h; gemma's scale and norms as HF rounds them), so their
      // half-precision logits are bit-identical. Mixtral's expert sums are grouped differently
      // (bounded by the tolerance above). GPT-2's gelu_new is the
      // exception: transformers evaluates the tanh formula op by op in the half type, Reef calls
      // torch's fused tanh-GELU, which computes in float32 and rounds once.
      const auto arch =
          model_config_from_hf(nlohmann::json::parse(read_file(folder + "/config.json")), folder)
              .arch;
      if (arch == "llama" || arch == "mistral" || arch == "qwen2" || arch == "qwen3" ||
          arch == "gemma")
        EXPECT_EQ(ndiff, 0.0) << name;
    }
  }
  EXPECT_EQ(sharded, static_cast<int>(cases_.size()) * 3);
  EXPECT_EQ(half, static_cast<int>(cases_.size()) * 4);
}

TEST_F(HfLogits, ShardedFoldersReefWritesLoadInTransformers) {
  ASSERT_FALSE(cases_.empty());
  testing::ScratchDir scratch;
  const std::string out = scratch / "reef_sharded";
  for (const auto& name : cases_) {
    CausalLM model = load_model_folder(dir_ + "/" + name, torch::kCPU);
    make_dirs(out + "/" + name);
    save_model_folder(out + "/" + name, model, nullptr, /*max_shard_bytes=*/8 * 1024);
    EXPECT_TRUE(path_exists(out + "/" + name + "/" + kWeightsIndexFile)) << name;
  }
  auto r = testing::run_python(
      {testing::source_dir() + "/tests/reference/hf_make_tiny.py", "verify-sharded", out, dir_});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::cout << r.output;
}

}  // namespace
}  // namespace reef
