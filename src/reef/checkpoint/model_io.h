// A model as a Hugging Face folder: model.safetensors (HF parameter names), config.json,
// generation_config.json and the tokenizer files, written and read strictly (every tensor in
// the file is used, every parameter filled, shapes checked).
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "reef/models/causal_lm.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

// The tensors a checkpoint holds: the model's named parameters (HF names), detached.
std::vector<std::pair<std::string, torch::Tensor>> model_tensors(CausalLM& model);

// Writes model.safetensors, config.json, generation_config.json and (if given) the tokenizer
// files into the existing directory `dir`.
void save_model_folder(const std::string& dir, CausalLM& model, const Tokenizer* tokenizer);

// Loads `<dir>/model.safetensors` (or a .safetensors path) into `model`, strictly.
void load_model_weights(CausalLM& model, const std::string& path);

// Builds the model described by `<dir>/config.json` and loads its weights.
CausalLM load_model_folder(const std::string& dir, const torch::Device& device);

}  // namespace reef
