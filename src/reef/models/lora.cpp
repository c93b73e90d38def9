// LoRA on a CausalLM (see lora.h).
#include "reef/models/lora.h"

#include <algorithm>
#include <regex>
#include <set>

#include "reef/base/error.h"

namespace reef {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string last_component(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// PEFT's list rule: the whole name, or a dotted suffix of it.
bool matches_entry(const std::string& name, const std::string& entry) {
  return name == entry || ends_with(name, "." + entry);
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

// The distinct last components of the Linear names, in first-seen order: the list an error
// message offers (every layer repeats the same few names).
std::vector<std::string> available_suffixes(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    auto last = last_component(n);
    if (std::find(out.begin(), out.end(), last) == out.end()) out.push_back(last);
  }
  return out;
}

// "all-linear" -> the suffixes of every Linear but lm_head; other lists as they are.
std::vector<std::string> expand_entries(const std::vector<std::string>& names,
                                        const LoraConfig& cfg) {
  if (cfg.target_modules.size() == 1 && cfg.target_modules[0] == "all-linear") {
    std::vector<std::string> out;
    for (const auto& s : available_suffixes(names))
      if (s != "lm_head") out.push_back(s);
    return out;
  }
  return cfg.target_modules;
}

}  // namespace

std::vector<std::pair<std::string, LinearImpl*>> linear_modules(CausalLM& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    if (auto* lin = item.value()->as<LinearImpl>()) {
      // A branch's own lora_A/lora_B are Linears too, never targets.
      const auto last = last_component(item.key());
      if (last == "lora_A" || last == "lora_B") continue;
      out.emplace_back(item.key(), lin);
    }
  }
  return out;
}

std::vector<std::string> linear_module_names(CausalLM& model) {
  std::vector<std::string> names;
  for (const auto& m : linear_modules(model)) names.push_back(m.first);
  return names;
}

std::vector<std::string> lora_target_names(CausalLM& model, const LoraConfig& cfg,
                                           bool each_entry_must_match) {
  const auto names = linear_module_names(model);
  const auto available = join(available_suffixes(names));
  if (!is_llama_family(model->config().arch))
    usage_error(
        "LoRA: the {} architecture has no Linear projections Reef can target (only the "
        "llama family: {})",
        model->config().arch, supported_archs_list());
  std::vector<std::string> targets;
  if (!cfg.target_regex.empty()) {
    std::regex re;
    try {
      re = std::regex(cfg.target_regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      usage_error("LoRA target_modules: invalid regex '{}': {}", cfg.target_regex, e.what());
    }
    for (const auto& n : names)
      if (std::regex_match(n, re)) targets.push_back(n);
    if (targets.empty())
      usage_error(
          "LoRA target_modules regex '{}' matches no Linear module (full names such as "
          "'{}'; the Linear layers are: {})",
          cfg.target_regex, names.empty() ? "" : names.front(), available);
    return targets;
  }
  if (cfg.target_modules.empty())
    usage_error("LoRA target_modules is empty (choose from: {}, or all-linear)", available);
  const auto entries = expand_entries(names, cfg);
  for (const auto& e : entries) {
    bool hit = false;
    for (const auto& n : names) hit = hit || matches_entry(n, e);
    if (!hit && each_entry_must_match)
      usage_error(
          "LoRA target module '{}' matches no Linear module (available: {}, or "
          "all-linear)",
          e, available);
  }
  for (const auto& n : names) {
    for (const auto& e : entries) {
      if (matches_entry(n, e)) {
        targets.push_back(n);
        break;
      }
    }
  }
  if (targets.empty())
    usage_error("LoRA target_modules [{}] match no Linear module (available: {}, or all-linear)",
                join(cfg.target_modules), available);
  return targets;
}

std::vector<std::string> lora_target_suffixes(CausalLM& model, const LoraConfig& cfg) {
  if (!cfg.target_regex.empty()) return {};
  std::set<std::string> s;
  for (const auto& n : lora_target_names(model, cfg)) s.insert(last_component(n));
  return {s.begin(), s.end()};
}

std::vector<torch::Tensor> apply_lora(CausalLM& model, const LoraConfig& cfg) {
  // Checked here too (enable_lora does) so that a bad value changes nothing.
  if (cfg.layer.r < 1) usage_error("LoRA rank r must be >= 1, got {}", cfg.layer.r);
  if (cfg.layer.dropout < 0 || cfg.layer.dropout >= 1)
    usage_error("LoRA dropout must be in [0, 1), got {}", cfg.layer.dropout);
  const auto targets = lora_target_names(model, cfg);
  const std::set<std::string> wanted(targets.begin(), targets.end());
  const auto modules = linear_modules(model);
  for (const auto& [name, lin] : modules)
    if (lin->has_lora()) fail("apply_lora: {} already has a LoRA branch", name);
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  std::vector<torch::Tensor> trainable;
  for (const auto& [name, lin] : modules) {
    if (!wanted.count(name)) continue;
    lin->enable_lora(cfg.layer);
    trainable.push_back(lin->lora_A->weight);
    trainable.push_back(lin->lora_B->weight);
  }
  return trainable;
}

std::vector<std::pair<std::string, torch::Tensor>> lora_named_parameters(CausalLM& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, lin] : linear_modules(model)) {
    if (!lin->has_lora()) continue;
    out.emplace_back(name + ".lora_A.weight", lin->lora_A->weight);
    out.emplace_back(name + ".lora_B.weight", lin->lora_B->weight);
  }
  return out;
}

int merge_lora(CausalLM& model) {
  int merged = 0;
  for (const auto& [name, lin] : linear_modules(model)) {
    if (!lin->has_lora()) continue;
    lin->merge_lora();
    ++merged;
  }
  return merged;
}

LoraDisabled::LoraDisabled(CausalLM& model) {
  for (const auto& [name, lin] : linear_modules(model))
    if (lin->has_lora() && lin->lora_enabled) {
      lin->lora_enabled = false;
      layers_.push_back(lin);
    }
}

LoraDisabled::~LoraDisabled() {
  for (auto& lin : layers_) lin->lora_enabled = true;
}

}  // namespace reef
