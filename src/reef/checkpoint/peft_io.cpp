// PEFT adapter folders (see peft_io.h).
#include "reef/checkpoint/peft_io.h"

#include <fmt/format.h>

#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/safetensors.h"
#include "reef/nn/init.h"

namespace reef {
namespace {

using nlohmann::json;

bool absent_or_null(const json& j, const char* key) {
  return !j.contains(key) || j.at(key).is_null();
}

// A key whose value must be null/absent or an empty container or false: a peft feature Reef
// does not implement, refused rather than silently ignored.
void require_unused(const json& j, const char* key, const std::string& path, const char* what) {
  if (absent_or_null(j, key)) return;
  const auto& v = j.at(key);
  if ((v.is_object() || v.is_array() || v.is_string()) && v.empty()) return;
  if (v.is_boolean() && !v.get<bool>()) return;
  usage_error("{}: \"{}\": {} is not supported by Reef (got {})", path, key, what, v.dump());
}

double number(const json& j, const char* key, const std::string& path, double fallback,
              bool required) {
  if (absent_or_null(j, key)) {
    if (required) usage_error("{}: missing \"{}\"", path, key);
    return fallback;
  }
  if (!j.at(key).is_number()) usage_error("{}: \"{}\" must be a number", path, key);
  return j.at(key).get<double>();
}

// The parameters a config applied to `model` would add: name -> shape.
std::map<std::string, std::vector<int64_t>> expected_lora_shapes(
    CausalLM& model, const LoraConfig& cfg, const std::vector<std::string>& targets) {
  std::map<std::string, std::vector<int64_t>> out;
  std::map<std::string, LinearImpl*> linears;
  for (const auto& item : model->named_modules("", false))
    if (auto* lin = item.value()->as<LinearImpl>()) linears[item.key()] = lin;
  for (const auto& name : targets) {
    auto* lin = linears.at(name);
    if (lin->has_lora()) usage_error("load_adapter: {} already has a LoRA branch", name);
    out[name + ".lora_A.weight"] = {cfg.layer.r, lin->in_features};
    out[name + ".lora_B.weight"] = {lin->out_features, cfg.layer.r};
  }
  return out;
}

std::string shape_str(const std::vector<int64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

json read_adapter_json(const std::string& dir) {
  const std::string path = join_path(dir, kAdapterConfigFile);
  if (!path_exists(path)) usage_error("{}: no such file (not a PEFT adapter folder)", path);
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::parse_error& e) {
    usage_error("{}: invalid JSON: {}", path, e.what());
  }
  if (!j.is_object()) usage_error("{}: expected a JSON object", path);
  return j;
}

}  // namespace

LoraConfig read_adapter_config(const std::string& dir) {
  const std::string path = join_path(dir, kAdapterConfigFile);
  const json j = read_adapter_json(dir);
  const std::string type = j.value("peft_type", std::string());
  if (type != "LORA")
    usage_error("{}: \"peft_type\" is '{}'; Reef loads LORA adapters", path, type);
  if (!absent_or_null(j, "task_type") && j.at("task_type") != "CAUSAL_LM")
    usage_error("{}: \"task_type\" is {}; Reef loads CAUSAL_LM adapters", path,
                j.at("task_type").dump());
  if (!absent_or_null(j, "bias") && j.at("bias") != "none")
    usage_error("{}: \"bias\": {} is not supported by Reef (only \"none\")", path,
                j.at("bias").dump());
  if (!absent_or_null(j, "fan_in_fan_out") && j.at("fan_in_fan_out") != false)
    usage_error("{}: \"fan_in_fan_out\": true (Conv1D layers) is not supported by Reef", path);
  require_unused(j, "use_dora", path, "DoRA");
  require_unused(j, "lora_bias", path, "a LoRA bias");
  require_unused(j, "modules_to_save", path, "training whole modules beside LoRA");
  require_unused(j, "rank_pattern", path, "a per-module rank");
  require_unused(j, "alpha_pattern", path, "a per-module alpha");
  require_unused(j, "layers_to_transform", path, "choosing layers");
  require_unused(j, "layers_pattern", path, "choosing layers");
  require_unused(j, "exclude_modules", path, "excluding modules");
  require_unused(j, "layer_replication", path, "layer replication");
  require_unused(j, "target_parameters", path, "LoRA on bare parameters");
  require_unused(j, "trainable_token_indices", path, "trainable tokens");
  require_unused(j, "alora_invocation_tokens", path, "activated LoRA");
  require_unused(j, "use_qalora", path, "QALoRA");
  require_unused(j, "use_bdlora", path, "block-diagonal LoRA");
  require_unused(j, "arrow_config", path, "Arrow routing");
  require_unused(j, "megatron_config", path, "Megatron parallel layers");

  LoraConfig cfg;
  const double r = number(j, "r", path, 8, true);
  if (r < 1 || r != static_cast<int64_t>(r))
    usage_error("{}: \"r\" must be a positive integer, got {}", path, j.at("r").dump());
  cfg.layer.r = static_cast<int64_t>(r);
  cfg.layer.alpha = number(j, "lora_alpha", path, 8, false);
  cfg.layer.dropout = number(j, "lora_dropout", path, 0, false);
  if (!absent_or_null(j, "use_rslora")) {
    if (!j.at("use_rslora").is_boolean()) usage_error("{}: \"use_rslora\" must be a boolean", path);
    cfg.layer.use_rslora = j.at("use_rslora").get<bool>();
  }
  if (absent_or_null(j, "target_modules"))
    usage_error("{}: \"target_modules\" is missing; Reef needs the adapter's target modules", path);
  const auto& t = j.at("target_modules");
  if (t.is_string()) {
    if (t.get<std::string>() == "all-linear")
      cfg.target_modules = {"all-linear"};
    else
      cfg.target_regex = t.get<std::string>();
  } else if (t.is_array() && !t.empty()) {
    for (const auto& e : t) {
      if (!e.is_string()) usage_error("{}: \"target_modules\" entries must be strings", path);
      cfg.target_modules.push_back(e.get<std::string>());
    }
  } else {
    usage_error("{}: \"target_modules\" must be a non-empty list of names or a regex string", path);
  }
  return cfg;
}

void save_adapter(const std::string& dir, CausalLM& model, const LoraConfig& cfg,
                  const std::string& base_model_name_or_path) {
  auto params = lora_named_parameters(model);
  if (params.empty()) fail("save_adapter: the model has no LoRA branch to save");
  const auto& o = cfg.layer;
  json targets =
      cfg.target_regex.empty() ? json(lora_target_suffixes(model, cfg)) : json(cfg.target_regex);
  // peft's LoraConfig fields; the ones left out take peft's defaults on load.
  json j = {
      {"alpha_pattern", json::object()},
      {"auto_mapping", nullptr},
      {"base_model_name_or_path",
       base_model_name_or_path.empty() ? json(nullptr) : json(base_model_name_or_path)},
      {"bias", "none"},
      {"exclude_modules", nullptr},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layer_replication", nullptr},
      {"layers_pattern", nullptr},
      {"layers_to_transform", nullptr},
      {"loftq_config", json::object()},
      {"lora_alpha", o.alpha},
      {"lora_bias", false},
      {"lora_dropout", o.dropout},
      {"megatron_config", nullptr},
      {"megatron_core", "megatron.core"},
      {"modules_to_save", nullptr},
      {"peft_type", "LORA"},
      {"r", o.r},
      {"rank_pattern", json::object()},
      {"revision", nullptr},
      {"target_modules", targets},
      {"task_type", "CAUSAL_LM"},
      {"trainable_token_indices", nullptr},
      {"use_dora", false},
      {"use_rslora", o.use_rslora},
  };
  // lora_alpha as an integer when it is one, as peft users write it.
  if (o.alpha == static_cast<double>(static_cast<int64_t>(o.alpha)))
    j["lora_alpha"] = static_cast<int64_t>(o.alpha);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, t] : params) tensors.emplace_back(kPeftKeyPrefix + name, t.detach());
  save_safetensors(join_path(dir, kAdapterWeightsFile), tensors, {{"format", "pt"}});
  write_file_atomic(join_path(dir, kAdapterConfigFile), j.dump(2) + "\n");
}

std::string adapter_peft_type(const std::string& dir) {
  return read_adapter_json(dir).value("peft_type", std::string());
}

void save_prompt_adapter(const std::string& dir, const torch::Tensor& prompt_embeddings,
                         const ModelConfig& model, const PromptTuningSpec& spec,
                         const std::string& base_model_name_or_path) {
  if (prompt_embeddings.dim() != 2 || prompt_embeddings.size(1) != model.hidden_size)
    fail("save_prompt_adapter: prompt embeddings {} are not [P, {}]",
         c10::str(prompt_embeddings.sizes()), model.hidden_size);
  json j = {
      {"auto_mapping", nullptr},
      {"base_model_name_or_path",
       base_model_name_or_path.empty() ? json(nullptr) : json(base_model_name_or_path)},
      {"inference_mode", true},
      {"modules_to_save", nullptr},
      {"num_attention_heads", model.n_heads},
      {"num_layers", model.n_layers},
      {"num_transformer_submodules", 1},
      {"num_virtual_tokens", prompt_embeddings.size(0)},
      {"peft_type", "PROMPT_TUNING"},
      {"prompt_tuning_init", spec.init_text.empty() ? "RANDOM" : "TEXT"},
      {"prompt_tuning_init_text", spec.init_text.empty() ? json(nullptr) : json(spec.init_text)},
      {"revision", nullptr},
      {"task_type", "CAUSAL_LM"},
      {"token_dim", model.hidden_size},
      {"tokenizer_kwargs", nullptr},
      {"tokenizer_name_or_path", spec.init_text.empty() || base_model_name_or_path.empty()
                                     ? json(nullptr)
                                     : json(base_model_name_or_path)},
  };
  save_safetensors(join_path(dir, kAdapterWeightsFile),
                   {{"prompt_embeddings", prompt_embeddings.detach()}}, {{"format", "pt"}});
  write_file_atomic(join_path(dir, kAdapterConfigFile), j.dump(2) + "\n");
}

torch::Tensor load_prompt_adapter(const std::string& dir, const ModelConfig& model,
                                  PromptTuningSpec* spec) {
  const std::string cpath = join_path(dir, kAdapterConfigFile);
  json j = read_adapter_json(dir);
  const std::string type = j.value("peft_type", std::string());
  if (type != "PROMPT_TUNING")
    usage_error("{}: \"peft_type\" is '{}'; expected PROMPT_TUNING", cpath, type);
  if (!absent_or_null(j, "task_type") && j.at("task_type") != "CAUSAL_LM")
    usage_error("{}: \"task_type\" is {}; Reef loads CAUSAL_LM adapters", cpath,
                j.at("task_type").dump());
  if (!absent_or_null(j, "num_transformer_submodules") && j.at("num_transformer_submodules") != 1)
    usage_error("{}: \"num_transformer_submodules\" is {}; a decoder-only model has 1", cpath,
                j.at("num_transformer_submodules").dump());
  require_unused(j, "modules_to_save", cpath, "training extra modules");
  if (!j.contains("num_virtual_tokens") || !j.at("num_virtual_tokens").is_number_integer())
    usage_error("{}: \"num_virtual_tokens\" must be an integer", cpath);
  const int64_t P = j.at("num_virtual_tokens").get<int64_t>();
  if (!absent_or_null(j, "token_dim") && j.at("token_dim") != model.hidden_size)
    usage_error("{}: \"token_dim\" is {}, the model's hidden size is {}", cpath,
                j.at("token_dim").dump(), model.hidden_size);
  const std::string path = join_path(dir, kAdapterWeightsFile);
  if (!path_exists(path)) usage_error("{}: no such file (the adapter's weights)", path);
  auto file = SafetensorsFile::open(path);
  for (const auto& key : file.keys())
    if (key != "prompt_embeddings")
      usage_error(
          "{}: unexpected tensor '{}' (a prompt-tuning adapter holds only prompt_embeddings)", path,
          key);
  if (!file.contains("prompt_embeddings")) usage_error("{}: no tensor 'prompt_embeddings'", path);
  const std::vector<int64_t> want = {P, model.hidden_size};
  if (file.shape("prompt_embeddings") != want)
    usage_error("{}: 'prompt_embeddings' has shape {}, expected {}", path,
                shape_str(file.shape("prompt_embeddings")), shape_str(want));
  if (spec) {
    spec->num_virtual_tokens = P;
    spec->init_text = j.value("prompt_tuning_init", std::string()) == "TEXT" &&
                              j.contains("prompt_tuning_init_text") &&
                              j["prompt_tuning_init_text"].is_string()
                          ? j["prompt_tuning_init_text"].get<std::string>()
                          : "";
  }
  return file.tensor("prompt_embeddings").to(torch::kFloat).clone();
}

LoadedAdapter read_adapter(const std::string& dir, CausalLM& model) {
  LoadedAdapter out;
  out.config = read_adapter_config(dir);
  const LoraConfig& cfg = out.config;
  const std::string path = join_path(dir, kAdapterWeightsFile);
  if (!path_exists(path)) usage_error("{}: no such file (the adapter's weights)", path);
  auto file = SafetensorsFile::open(path);
  // As peft: a list entry that matches nothing is fine as long as something matches.
  out.targets = lora_target_names(model, cfg, /*each_entry_must_match=*/false);
  const auto expected = expected_lora_shapes(model, cfg, out.targets);
  const std::string prefix = kPeftKeyPrefix;
  std::map<std::string, std::string> key_of;  // parameter name -> file key
  for (const auto& key : file.keys()) {
    if (key.compare(0, prefix.size(), prefix) != 0)
      usage_error("{}: tensor '{}' does not start with '{}' (not a PEFT causal-LM adapter)", path,
                  key, prefix);
    const std::string name = key.substr(prefix.size());
    auto it = expected.find(name);
    if (it == expected.end())
      usage_error("{}: tensor '{}' is not a LoRA parameter of the target modules {}", path, key,
                  cfg.target_regex.empty()
                      ? fmt::format("[{}]", fmt::join(cfg.target_modules, ", "))
                      : "'" + cfg.target_regex + "'");
    if (file.shape(key) != it->second)
      usage_error("{}: tensor '{}' has shape {}, the model needs {} (r = {})", path, key,
                  shape_str(file.shape(key)), shape_str(it->second), cfg.layer.r);
    if (!c10::isFloatingType(file.dtype(key)))
      usage_error("{}: tensor '{}' has dtype {}, expected a floating type", path, key,
                  c10::toString(file.dtype(key)));
    key_of[name] = key;
  }
  for (const auto& [name, shape] : expected)
    if (!key_of.count(name))
      usage_error("{}: no tensor '{}{}' for a targeted layer", path, prefix, name);
  for (const auto& [name, key] : key_of) out.tensors[name] = file.tensor(key);
  return out;
}

LoraConfig load_adapter(const std::string& dir, CausalLM& model) {
  LoadedAdapter a = read_adapter(dir, model);  // every check before the model changes
  {
    LoraConfig exact = a.config;  // the resolved full names, which match exactly
    exact.target_regex.clear();
    exact.target_modules = a.targets;
    SkipInitGuard skip;  // every branch value comes from the file
    apply_lora(model, exact);
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, param] : lora_named_parameters(model)) param.copy_(a.tensors.at(name));
  return a.config;
}

std::shared_ptr<const ServedAdapter> load_served_adapter(const std::string& name,
                                                         const std::string& dir, CausalLM& model) {
  static std::atomic<uint64_t> next_uid{1};
  LoadedAdapter loaded = read_adapter(dir, model);
  auto a = std::make_shared<ServedAdapter>();
  a->name = name;
  a->dir = dir;
  a->uid = next_uid++;
  a->config = loaded.config;
  const auto& o = loaded.config.layer;
  a->scaling = o.use_rslora ? o.alpha / std::sqrt(static_cast<double>(o.r))
                            : o.alpha / static_cast<double>(o.r);
  const torch::Tensor ref = model->parameters().front();
  auto opts = torch::TensorOptions().dtype(ref.scalar_type()).device(ref.device());
  for (const auto& target : loaded.targets) {
    a->layers[target] = {loaded.tensors.at(target + ".lora_A.weight").to(opts),
                         loaded.tensors.at(target + ".lora_B.weight").to(opts)};
  }
  return a;
}

}  // namespace reef
