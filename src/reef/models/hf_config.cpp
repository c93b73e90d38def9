// HF config.json mapping (see hf_config.h): the keys every family shares, the model_type and
// `architectures` checks from the registry; each family's own keys and defaults are in
// models/<family>/*_hf.cpp.
#include "reef/models/hf_config.h"

#include <algorithm>

#include "reef/base/error.h"
#include "reef/models/family.h"
#include "reef/models/hf_reader.h"

namespace reef {

namespace {

using nlohmann::json;

// The HF classes whose checkpoints load into CausalLM, over every family.
std::vector<std::string> loadable_architectures() {
  std::vector<std::string> out;
  for (const ModelFamily* f : model_families())
    for (const auto& arch : f->archs)
      for (const auto& cls : f->hf_classes(arch))
        if (std::find(out.begin(), out.end(), cls) == out.end()) out.push_back(cls);
  return out;
}

void check_architectures(const HfReader& r, const ModelFamily& family, const std::string& type) {
  if (!r.has("architectures")) return;
  const json& list = r.at("architectures");
  if (!list.is_array()) usage_error("{}: 'architectures' must be a list", r.where());
  const auto ok = family.hf_classes(type);
  std::string names;
  for (const auto& n : loadable_architectures()) names += (names.empty() ? "" : ", ") + n;
  for (const auto& a : list) {
    if (!a.is_string()) usage_error("{}: 'architectures' must be a list of class names", r.where());
    const std::string name = a.get<std::string>();
    if (std::find(ok.begin(), ok.end(), name) == ok.end()) {
      usage_error("{}: architecture '{}' (model_type '{}') is not supported; supported: {}",
                  r.where(), name, type, names);
    }
  }
}

}  // namespace

nlohmann::json hf_config_json(const ModelConfig& cfg) {
  const ModelConfig c = resolve_model_config(cfg);
  const ModelFamily& family = model_family(c.arch);
  json j;
  j["architectures"] = json::array({family.hf_classes(c.arch).front()});
  j["model_type"] = c.arch;
  j["vocab_size"] = c.vocab_size;
  j["initializer_range"] = c.init_std;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["torch_dtype"] = "float32";
  j["use_cache"] = true;
  family.to_hf(c, j);
  return j;
}

ModelConfig model_config_from_hf(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) usage_error("{}: expected a JSON object", where);
  HfReader r(j, where);
  if (!r.has("model_type")) {
    usage_error("{}: no 'model_type'; supported: {}", where, supported_archs_list());
  }
  const std::string type = r.string("model_type", "");
  const ModelFamily* family = find_model_family(type);
  if (family == nullptr) {
    usage_error("{}: model_type '{}' is not supported; supported: {}", where, type,
                supported_archs_list());
  }
  check_architectures(r, *family, type);
  ModelConfig c = family->from_hf(r, type);
  try {
    return resolve_model_config(c);
  } catch (const Error& e) {
    usage_error("{}: {}", where, e.what());
  }
}

std::string hf_parameter_name(const ModelConfig& cfg, const std::string& tensor_name) {
  return model_family(cfg.arch).hf_parameter_name(cfg, tensor_name);
}

}  // namespace reef
