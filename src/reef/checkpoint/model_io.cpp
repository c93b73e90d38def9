// Implementation of checkpoint/model_io.h.
#include "reef/checkpoint/model_io.h"

#include <nlohmann/json.hpp>

#include <set>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/safetensors.h"
#include "reef/models/hf_config.h"

namespace reef {

std::vector<std::pair<std::string, torch::Tensor>> model_tensors(CausalLM& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model->named_parameters(true))
    out.emplace_back(item.key(), item.value().detach());
  return out;
}

void save_model_folder(const std::string& dir, CausalLM& model, const Tokenizer* tokenizer) {
  save_safetensors(join_path(dir, "model.safetensors"), model_tensors(model), {{"format", "pt"}});
  nlohmann::json cfg = hf_config_json(model->config());
  nlohmann::json gen = {{"_from_model_config", true}};
  if (tokenizer) {
    cfg["bos_token_id"] = tokenizer->bos_id();
    cfg["eos_token_id"] = tokenizer->eos_id();
    gen["bos_token_id"] = tokenizer->bos_id();
    gen["eos_token_id"] = tokenizer->eos_id();
    tokenizer->save(dir);
  }
  write_file_atomic(join_path(dir, "config.json"), cfg.dump(2));
  write_file_atomic(join_path(dir, "generation_config.json"), gen.dump(2));
}

void load_model_weights(CausalLM& model, const std::string& path) {
  std::string file = is_directory(path) ? join_path(path, "model.safetensors") : path;
  if (!path_exists(file)) fail("no model weights at {}", file);
  auto tensors = load_safetensors(file);
  std::set<std::string> used;
  torch::NoGradGuard ng;
  for (auto& item : model->named_parameters(true)) {
    auto it = tensors.find(item.key());
    if (it == tensors.end()) fail("{}: missing tensor '{}'", file, item.key());
    auto& p = item.value();
    if (!it->second.sizes().equals(p.sizes()))
      fail("{}: tensor '{}' has shape {} but the model expects {}", file, item.key(),
           c10::str(it->second.sizes()), c10::str(p.sizes()));
    p.copy_(it->second);
    used.insert(item.key());
  }
  for (const auto& [name, t] : tensors)
    if (!used.count(name)) fail("{}: tensor '{}' is not a parameter of this model", file, name);
}

CausalLM load_model_folder(const std::string& dir, const torch::Device& device) {
  std::string cfg_path = join_path(dir, "config.json");
  if (!path_exists(cfg_path)) usage_error("not a model folder (no config.json): {}", dir);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(cfg_path));
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: malformed JSON: {}", cfg_path, e.what());
  }
  CausalLM model(model_config_from_hf(j, cfg_path));
  load_model_weights(model, dir);
  model->to(device);
  return model;
}

}  // namespace reef
