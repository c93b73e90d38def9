// PEFT adapter folders (checkpoint/peft_io.h): a save/load round trip gives the same logits and
// the config back, the files carry PEFT's names, and every unsupported PEFT feature or
// inconsistent file is one clear error naming the key, with the model left untouched.
#include "reef/checkpoint/peft_io.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/safetensors.h"
#include "testing/testing.h"

namespace reef {
namespace {

CausalLM tiny() {
  ModelConfig c;
  c.arch = "qwen2";
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.max_seq_len = 16;
  torch::manual_seed(3);
  return CausalLM(c);
}

LoraConfig qv() {
  LoraConfig c;
  c.target_modules = {"q_proj", "v_proj"};
  c.layer.r = 4;
  c.layer.alpha = 6;
  c.layer.use_rslora = true;
  c.layer.dropout = 0.05;
  c.layer.init_weights = false;
  return c;
}

// An adapter folder saved from the tiny model with random q/v branches.
std::string saved_adapter(const testing::ScratchDir& scratch, const std::string& name) {
  auto model = tiny();
  apply_lora(model, qv());
  const std::string dir = scratch / name;
  make_dirs(dir);
  save_adapter(dir, model, qv(), "some/base");
  return dir;
}

std::string load_error(const std::string& dir) {
  auto model = tiny();
  try {
    load_adapter(dir, model);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_TRUE(lora_named_parameters(model).empty()) << "model changed before the error";
    return e.what();
  }
  ADD_FAILURE() << "loaded " << dir;
  return "";
}

TEST(PeftIo, RoundTripKeepsLogitsAndConfig) {
  testing::ScratchDir scratch;
  auto model = tiny();
  apply_lora(model, qv());
  const std::string dir = scratch / "a";
  make_dirs(dir);
  save_adapter(dir, model, qv(), "some/base");

  auto j = nlohmann::json::parse(read_file(dir + "/adapter_config.json"));
  EXPECT_EQ(j.at("peft_type"), "LORA");
  EXPECT_EQ(j.at("task_type"), "CAUSAL_LM");
  EXPECT_EQ(j.at("r"), 4);
  EXPECT_EQ(j.at("lora_alpha"), 6);
  EXPECT_EQ(j.at("use_rslora"), true);
  EXPECT_EQ(j.at("bias"), "none");
  EXPECT_EQ(j.at("base_model_name_or_path"), "some/base");
  EXPECT_EQ(j.at("target_modules"), nlohmann::json({"q_proj", "v_proj"}));
  auto file = load_safetensors(dir + "/adapter_model.safetensors");
  EXPECT_EQ(file.size(), 8u);
  EXPECT_TRUE(file.count("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"));

  auto other = tiny();  // the same base weights (same seed)
  const auto cfg = load_adapter(dir, other);
  EXPECT_EQ(cfg.layer.r, 4);
  EXPECT_DOUBLE_EQ(cfg.layer.alpha, 6);
  EXPECT_DOUBLE_EQ(cfg.layer.dropout, 0.05);
  EXPECT_TRUE(cfg.layer.use_rslora);
  model->eval();
  other->eval();
  auto ids = torch::randint(0, 32, {1, 7});
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(model(ids), other(ids)));
  EXPECT_GT((model(ids) - tiny()(ids)).abs().max().item<double>(), 1e-4);
}

TEST(PeftIo, UnsupportedPeftFeaturesAreErrorsNamingTheKey) {
  testing::ScratchDir scratch;
  const std::vector<std::pair<std::string, nlohmann::json>> bad = {
      {"use_dora", true},
      {"bias", "all"},
      {"modules_to_save", {"lm_head"}},
      {"rank_pattern", {{"q_proj", 8}}},
      {"alpha_pattern", {{"q_proj", 8}}},
      {"layers_to_transform", {0}},
      {"fan_in_fan_out", true},
      {"peft_type", "IA3"},
      {"r", 0},
      {"target_modules", nullptr},
  };
  int i = 0;
  for (const auto& [key, value] : bad) {
    const std::string dir = saved_adapter(scratch, "bad" + std::to_string(i++));
    auto j = nlohmann::json::parse(read_file(dir + "/adapter_config.json"));
    j[key] = value;
    write_file_atomic(dir + "/adapter_config.json", j.dump());
    const auto msg = load_error(dir);
    EXPECT_NE(msg.find(key), std::string::npos) << key << ": " << msg;
    EXPECT_NE(msg.find("adapter_config.json"), std::string::npos) << msg;
  }
}

TEST(PeftIo, InconsistentWeightsAreErrorsNamingTheTensor) {
  testing::ScratchDir scratch;
  const std::string key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
  struct Case {
    std::string name, expect;
    std::function<void(std::map<std::string, torch::Tensor>&)> edit;
  };
  const std::vector<Case> cases = {
      {"missing", "no tensor '" + key, [&](auto& m) { m.erase(key); }},
      {"shape", "has shape [3, 16]",
       [&](auto& m) {
         m[key] = torch::zeros({3, 16});
       }},
      {"extra", "model.layers.0.self_attn.k_proj.lora_A.weight",
       [&](auto& m) {
         m["base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"] =
             torch::zeros({4, 16});
       }},
      {"prefix", "does not start with",
       [&](auto& m) {
         m["model.layers.0.self_attn.q_proj.lora_A.weight"] = m.at(key);
         m.erase(key);
       }},
      {"dtype", "dtype",
       [&](auto& m) {
         m[key] = torch::zeros({4, 16}, torch::kInt32);
       }},
  };
  for (const auto& c : cases) {
    const std::string dir = saved_adapter(scratch, c.name);
    auto m = load_safetensors(dir + "/adapter_model.safetensors");
    c.edit(m);
    std::vector<std::pair<std::string, torch::Tensor>> v(m.begin(), m.end());
    save_safetensors(dir + "/adapter_model.safetensors", v);
    const auto msg = load_error(dir);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
  }
  const auto msg = load_error(scratch / "nowhere");
  EXPECT_NE(msg.find("adapter_config.json"), std::string::npos) << msg;
}

TEST(PeftIo, SavingWithoutBranchesIsAnError) {
  testing::ScratchDir scratch;
  auto model = tiny();
  EXPECT_THROW(save_adapter(scratch.path(), model, qv()), Error);
  EXPECT_FALSE(path_exists(scratch / "adapter_config.json"));
}

}  // namespace
}  // namespace reef

namespace reef {
namespace {

// A model folder never takes LoRA branches: saving one refuses instead of writing lora_* keys
// into model.safetensors; after merge_lora it saves the base names only.
TEST(PeftIo, ModelFolderRefusesUnmergedBranches) {
  testing::ScratchDir scratch;
  auto model = tiny();
  apply_lora(model, qv());
  const std::string dir = scratch / "folder";
  make_dirs(dir);
  EXPECT_THROW(save_model_folder(dir, model, nullptr), Error);
  EXPECT_FALSE(path_exists(dir + "/model.safetensors"));
  merge_lora(model);
  save_model_folder(dir, model, nullptr);
  for (const auto& name : load_safetensors(dir + "/model.safetensors"))
    EXPECT_EQ(name.first.find("lora_"), std::string::npos) << name.first;
}

}  // namespace
}  // namespace reef
