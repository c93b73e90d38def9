// Tests for the model presets: each loads and validates, sets only known model keys, and the
// real-model presets reproduce their published parameter counts exactly, which checks every
// shape hyperparameter against the Hugging Face checkpoints at once.
#include <gtest/gtest.h>

#include <set>

#include "config_testing.h"
#include "reef/config/config.h"

namespace reef {
namespace {

// Parameters of the model a config describes, counted the way the HF implementations lay
// them out (llama family: RMSNorm, SwiGLU, RoPE; gpt2: LayerNorm, learned positions).
int64_t parameter_count(const ModelConfig& m) {
  const int64_t h = m.hidden_size, v = m.vocab_size, l = m.n_layers;
  const int64_t d = resolved_head_dim(m), q = m.n_heads * d, kv = resolved_kv_heads(m) * d;
  const int64_t inter = resolved_intermediate_size(m);
  const int64_t embed = v * h * (m.tie_embeddings ? 1 : 2);
  if (m.arch == "gpt2") {
    int64_t block =
        2 * h + (h * 3 * h + 3 * h) + (h * h + h) + 2 * h + (h * inter + inter) + (inter * h + h);
    return embed + m.max_seq_len * h + l * block + 2 * h;
  }
  int64_t attn = h * q + 2 * h * kv + q * h;
  if (m.attention_bias) attn += q + 2 * kv + (m.arch == "qwen2" ? 0 : h);
  if (m.qk_norm) attn += 2 * d;
  int64_t mlp = 3 * h * inter + (m.mlp_bias ? 2 * inter + h : 0);
  if (m.arch == "mixtral") mlp = (m.n_experts > 0 ? m.n_experts : 8) * (3 * h * inter + h);
  return embed + l * (attn + mlp + 2 * h) + h;
}

ModelConfig preset_model(const std::string& name) {
  return load_config("", {"model.preset=" + name}).config.model;
}

TEST(ConfigPresets, AllExpectedPresetsExist) {
  for (const char* name :
       {"llama-tiny", "gpt2-tiny", "mistral-tiny", "qwen2-tiny", "qwen3-tiny", "llama-3.2-1b",
        "llama-3.1-8b", "llama-2-7b", "mistral-7b", "qwen2.5-0.5b", "qwen3-0.6b", "smollm-135m",
        "tinyllama-1.1b", "gpt2", "mixtral-tiny", "gemma-tiny", "mixtral-8x7b", "gemma-2b"}) {
    EXPECT_EQ(model_presets().count(name), 1u) << name;
  }
}

TEST(ConfigPresets, EveryPresetSetsOnlyKnownModelKeysAndValidates) {
  std::set<std::string> known;
  for (const ConfigKey& k : config_keys()) known.insert(k.key);
  for (const auto& [name, keys] : model_presets()) {
    for (const auto& [key, value] : keys) {
      EXPECT_EQ(known.count(key), 1u) << name << " sets unknown " << key;
      EXPECT_EQ(key.rfind("model.", 0), 0u) << name << " sets non-model " << key;
      EXPECT_NE(key, "model.preset");
    }
    // Real presets have long contexts; validation needs data.seq_len <= max_seq_len only.
    ResolvedConfig rc = load_config("", {"model.preset=" + name});
    EXPECT_EQ(rc.config.model.preset, name);
    for (const auto& [key, value] : keys) EXPECT_EQ(rc.origin.at(key), "preset " + name) << key;
  }
}

TEST(ConfigPresets, TinyPresetsAreTinyAndCoverEachArch) {
  for (const char* name : {"llama-tiny", "gpt2-tiny", "mistral-tiny", "qwen2-tiny", "qwen3-tiny",
                           "mixtral-tiny", "gemma-tiny"}) {
    ModelConfig m = preset_model(name);
    m.vocab_size = 260;  // about the byte tokenizer's
    int64_t n = parameter_count(m);
    EXPECT_GT(n, 300'000) << name;
    EXPECT_LT(n, 5'000'000) << name;
    EXPECT_EQ(m.max_seq_len, 256) << name;
    EXPECT_EQ(m.vocab_size, 260);
  }
  EXPECT_EQ(preset_model("llama-tiny").arch, "llama");
  EXPECT_EQ(preset_model("llama-tiny").n_kv_heads, 2);
  EXPECT_EQ(preset_model("gpt2-tiny").arch, "gpt2");
  EXPECT_EQ(resolved_activation(preset_model("gpt2-tiny")), "gelu_new");
  EXPECT_EQ(preset_model("mistral-tiny").arch, "mistral");
  EXPECT_EQ(preset_model("qwen2-tiny").arch, "qwen2");
  EXPECT_TRUE(preset_model("qwen2-tiny").attention_bias);
  ModelConfig q3 = preset_model("qwen3-tiny");
  EXPECT_EQ(q3.arch, "qwen3");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_EQ(q3.head_dim, 64);
  EXPECT_NE(q3.head_dim, q3.hidden_size / q3.n_heads);  // explicit head_dim is exercised
}

TEST(ConfigPresets, RealPresetsMatchPublishedParameterCounts) {
  const std::vector<std::pair<std::string, int64_t>> published = {
      {"gpt2", 124'439'808},
      {"llama-2-7b", 6'738'415'616},
      {"llama-3.1-8b", 8'030'261'248},
      {"llama-3.2-1b", 1'235'814'400},
      {"mistral-7b", 7'241'732'096},
      {"qwen2.5-0.5b", 494'032'768},
      {"qwen3-0.6b", 596'049'920},
      {"smollm-135m", 134'515'008},
      {"tinyllama-1.1b", 1'100'048'384},
      {"mixtral-8x7b", 46'702'792'704},
      {"gemma-2b", 2'506'172'416},
  };
  for (const auto& [name, count] : published) {
    EXPECT_EQ(parameter_count(preset_model(name)), count) << name;
  }
}

TEST(ConfigPresets, Llama32HasItsRopeScalingAndTiedHead) {
  ModelConfig m = preset_model("llama-3.2-1b");
  EXPECT_EQ(m.rope_scaling, "llama3");
  EXPECT_EQ(m.rope_factor, 32.0);
  EXPECT_EQ(m.rope_low_freq_factor, 1.0);
  EXPECT_EQ(m.rope_high_freq_factor, 4.0);
  EXPECT_EQ(m.rope_original_max_seq_len, 8192);
  EXPECT_EQ(m.rope_theta, 500000.0);
  EXPECT_TRUE(m.tie_embeddings);
  EXPECT_EQ(m.vocab_size, 128256);
  EXPECT_EQ(m.max_seq_len, 131072);
  ModelConfig l8 = preset_model("llama-3.1-8b");
  EXPECT_EQ(l8.rope_scaling, "llama3");
  EXPECT_EQ(l8.rope_factor, 8.0);
  EXPECT_FALSE(l8.tie_embeddings);
  EXPECT_EQ(preset_model("qwen2.5-0.5b").norm_eps, 1e-6);
  EXPECT_EQ(preset_model("qwen3-0.6b").rope_theta, 1e6);
  EXPECT_EQ(preset_model("gpt2").max_seq_len, 1024);
  EXPECT_EQ(preset_model("gpt2").activation, "gelu_new");
}

TEST(ConfigPresets, PresetKeysAreOverriddenByLaterKeys) {
  ResolvedConfig rc = load_config("", {"model.n_layers=2", "model.preset=llama-3.2-1b"});
  EXPECT_EQ(rc.config.model.n_layers, 2);  // the preset goes first whatever the order
  EXPECT_EQ(rc.config.model.hidden_size, 2048);
}

}  // namespace
}  // namespace reef
