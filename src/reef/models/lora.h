// LoRA on a built CausalLM, applied from outside the model code (as PEFT's get_peft_model does):
// pick the Linear layers by PEFT's target_modules rules, add a branch to each (nn/linear.h),
// freeze every base parameter and hand back the trainable ones; merge everything back for export.
// Adapter files in PEFT's layout are in checkpoint/peft_io.h.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "reef/models/causal_lm.h"
#include "reef/nn/linear.h"

namespace reef {

struct LoraConfig {
  LoraOptions layer;  // r, alpha, dropout, use_rslora, init_weights
  // PEFT's target_modules as a list: a Linear is targeted when its full name equals an entry or
  // ends with "." + entry ("q_proj" matches "model.layers.0.self_attn.q_proj"). The single entry
  // "all-linear" means every Linear but the output layer (lm_head).
  std::vector<std::string> target_modules;
  // PEFT's target_modules as a string: a regex (ECMAScript) that must match a Linear's whole
  // name. Used instead of target_modules when non-empty.
  std::string target_regex;
};

// Full names of the model's Linear modules ("model.layers.0.self_attn.q_proj", ..., "lm_head").
std::vector<std::string> linear_module_names(CausalLM& model);
// The same with the modules (owned by the model); LoRA branches' own lora_A/lora_B left out.
std::vector<std::pair<std::string, LinearImpl*>> linear_modules(CausalLM& model);

// The Linear modules `cfg` targets, in module order. Throws reef::Error(kUsage), listing the
// available module names, when nothing matches; with each_entry_must_match also when any one
// list entry matches nothing (a typo in a user's config). "all-linear" expands to the suffixes of
// every Linear but lm_head. Only the llama family has Linear projections to target.
std::vector<std::string> lora_target_names(CausalLM& model, const LoraConfig& cfg,
                                           bool each_entry_must_match = true);

// The target_modules list PEFT would record for `cfg`: the sorted distinct last components of
// the targeted names ("all-linear" expanded), or empty when cfg uses target_regex.
std::vector<std::string> lora_target_suffixes(CausalLM& model, const LoraConfig& cfg);

// Adds a LoRA branch to every targeted Linear, sets requires_grad false on every base parameter
// and returns the LoRA parameters (lora_A then lora_B of each layer, in module order), the only
// trainable ones. Throws if the model already has LoRA branches.
std::vector<torch::Tensor> apply_lora(CausalLM& model, const LoraConfig& cfg);

// The LoRA parameters by name ("model.layers.0.self_attn.q_proj.lora_A.weight", ...).
std::vector<std::pair<std::string, torch::Tensor>> lora_named_parameters(CausalLM& model);

// Folds every branch into its base weight (nn/linear.h merge_lora) and removes it, so the model's
// parameters are the base architecture's again and save as a plain HF folder. Returns how many
// layers were merged. Does not change requires_grad.
int merge_lora(CausalLM& model);

// While alive, every LoRA branch of the model is off: the model computes its base weights alone
// (peft's disable_adapter(); the reference model of LoRA alignment). Restores them on exit.
class LoraDisabled {
 public:
  explicit LoraDisabled(CausalLM& model);
  ~LoraDisabled();
  LoraDisabled(const LoraDisabled&) = delete;
  LoraDisabled& operator=(const LoraDisabled&) = delete;

 private:
  std::vector<LinearImpl*> layers_;  // owned by the model, which outlives the scope
};

}  // namespace reef
