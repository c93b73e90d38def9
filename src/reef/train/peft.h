// Parameter-efficient fine-tuning methods attached to a built model from outside: LoRA (branches
// on the targeted Linear layers, models/lora.h) and prompt tuning (learned vectors put before
// every sample's token embeddings). The base model's weights are frozen and out of the
// optimizer; only the method's parameters train, and checkpoints hold only them, in peft's
// adapter layout (checkpoint/peft_io.h), so an adapter from any checkpoint loads in peft.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reef/config/config.h"
#include "reef/models/causal_lm.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

class Peft {
 public:
  virtual ~Peft() = default;
  virtual std::string method() const = 0;  // "lora", "prompt_tuning"
  // The trainable parameters under the names the optimizer state uses.
  virtual std::vector<std::pair<std::string, torch::Tensor>> parameters(CausalLM& model) = 0;
  // Prompt tuning: the [P, C] vectors put before every row; undefined otherwise.
  virtual torch::Tensor prefix() const { return {}; }
  // Writes adapter_config.json and adapter_model.safetensors into `dir`; returns their names.
  virtual std::vector<std::string> save(const std::string& dir, CausalLM& model) const = 0;
  virtual void to(const torch::Device& /*device*/) {}
};

// Attaches cfg.peft (method lora or prompt_tuning; nullptr for none) to `model`, freezing every
// base weight. `base_model` is recorded as the adapter's base_model_name_or_path. With
// `resume_dir` (a checkpoint holding an adapter) the adapter's values come from there, and its
// settings must equal cfg.peft's (a usage error names the key that differs).
std::unique_ptr<Peft> attach_peft(CausalLM& model, const Config& cfg, const Tokenizer& tokenizer,
                                  const std::string& base_model,
                                  const std::string& resume_dir = "");

}  // namespace reef
