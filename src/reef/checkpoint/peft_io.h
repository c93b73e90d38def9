// LoRA adapters in PEFT's folder layout, so adapters move freely between Reef and Hugging Face
// peft: adapter_config.json (peft's LoraConfig as JSON) and adapter_model.safetensors holding
// "base_model.model.<layer>.lora_A.weight" [r, in] / "...lora_B.weight" [out, r] (peft's saved
// names: its adapter name "default" stripped). Loading is strict: every tensor is used, every
// LoRA parameter filled, shapes checked, and the peft features Reef does not implement (DoRA,
// bias other than "none", modules_to_save, rank/alpha patterns, layer selection, ...) are errors
// naming the key, never silently ignored.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reef/models/causal_lm.h"
#include "reef/models/lora.h"
#include "reef/models/multi_lora.h"

namespace reef {

inline constexpr const char* kAdapterConfigFile = "adapter_config.json";
inline constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";
inline constexpr const char* kPeftKeyPrefix = "base_model.model.";

// The LoraConfig an adapter folder's adapter_config.json describes (validated as above; the
// target_modules string form becomes target_regex). Errors name the file and the key.
LoraConfig read_adapter_config(const std::string& dir);

// Writes adapter_config.json and adapter_model.safetensors for the model's LoRA branches into
// the existing directory `dir`, each file atomically. `cfg` is what apply_lora was given (its
// target_modules are recorded as peft records them: "all-linear" expanded to the module
// suffixes). Throws if the model has no LoRA branch. Weights are written in their dtype.
void save_adapter(const std::string& dir, CausalLM& model, const LoraConfig& cfg,
                  const std::string& base_model_name_or_path = "");

// An adapter folder read and checked against a model, which it leaves unchanged.
struct LoadedAdapter {
  LoraConfig config;
  std::vector<std::string> targets;  // the targeted Linear modules' full names
  // "<layer>.lora_A.weight" [r, in] / "<layer>.lora_B.weight" [out, r], in the file's dtype
  std::map<std::string, torch::Tensor> tensors;
};
LoadedAdapter read_adapter(const std::string& dir, CausalLM& model);

// An adapter folder as one of several served over `model` at once (models/multi_lora.h): read
// and checked as read_adapter, the weights in the model's dtype and device. Throws
// reef::Error(kUsage) naming the file and key for a bad or mismatched adapter.
std::shared_ptr<const ServedAdapter> load_served_adapter(const std::string& name,
                                                         const std::string& dir, CausalLM& model);

// Applies the adapter in `dir` to a model holding the base weights: reads the config, adds the
// branches to the targeted layers (as apply_lora: base frozen) and fills them from the weights
// file, converting to the model's dtype. Every check runs before the model is changed. Returns
// the config read.
LoraConfig load_adapter(const std::string& dir, CausalLM& model);

// The "peft_type" of an adapter folder ("LORA", "PROMPT_TUNING", ...); errors name the file.
std::string adapter_peft_type(const std::string& dir);

// Prompt tuning in peft's layout: adapter_config.json (peft's PromptTuningConfig, task CAUSAL_LM,
// one transformer submodule) and adapter_model.safetensors holding "prompt_embeddings"
// [num_virtual_tokens, hidden_size]: the vectors put before every input's token embeddings.
struct PromptTuningSpec {
  int64_t num_virtual_tokens = 0;
  std::string init_text;  // peft's prompt_tuning_init_text ("" = RANDOM init)
};
void save_prompt_adapter(const std::string& dir, const torch::Tensor& prompt_embeddings,
                         const ModelConfig& model, const PromptTuningSpec& spec,
                         const std::string& base_model_name_or_path = "");
// The prompt embeddings [P, C] (float32) of a PROMPT_TUNING adapter for `model`: token_dim must
// be its hidden size, num_transformer_submodules 1; errors name the file and key.
torch::Tensor load_prompt_adapter(const std::string& dir, const ModelConfig& model,
                                  PromptTuningSpec* spec = nullptr);

}  // namespace reef
