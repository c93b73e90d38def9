// HF config.json mapping (see hf_config.h): the keys every family shares, the model_type and
// `architectures` checks from the registry; each family's own keys and defaults are in
// models/<family>/*_hf.cpp.
#include "reef/models/hf_config.h"

#include <algorithm>

#include "reef/base/error.h"
#include "reef/base/strings.h"
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

// Whether config.json names a *ForSequenceClassification class (a classifier / reward model).
bool names_classifier(const HfReader& r) {
  if (!r.has("architectures") || !r.at("architectures").is_array()) return false;
  for (const auto& a : r.at("architectures"))
    if (a.is_string() && ends_with(a.get<std::string>(), "ForSequenceClassification")) return true;
  return false;
}

void check_architectures(const HfReader& r, const ModelFamily& family, const std::string& type) {
  if (!r.has("architectures")) return;
  const json& list = r.at("architectures");
  if (!list.is_array()) usage_error("{}: 'architectures' must be a list", r.where());
  auto ok = family.hf_classes(type);
  ok.push_back(sequence_classifier_class(type));
  std::string names;
  for (const auto& n : loadable_architectures()) names += (names.empty() ? "" : ", ") + n;
  names += " and their *ForSequenceClassification classes";
  for (const auto& a : list) {
    if (!a.is_string()) usage_error("{}: 'architectures' must be a list of class names", r.where());
    const std::string name = a.get<std::string>();
    if (std::find(ok.begin(), ok.end(), name) == ok.end()) {
      usage_error("{}: architecture '{}' (model_type '{}') is not supported; supported: {}",
                  r.where(), name, type, names);
    }
  }
}

// A classifier's outputs, as transformers derives num_labels: id2label's size, else
// num_labels, else 2.
int64_t classifier_labels(const HfReader& r) {
  if (r.has("id2label")) {
    if (!r.at("id2label").is_object() || r.at("id2label").empty())
      usage_error("{}: 'id2label' must be a non-empty object", r.where());
    return static_cast<int64_t>(r.at("id2label").size());
  }
  return r.integer("num_labels", 2);
}

}  // namespace

nlohmann::json hf_config_json(const ModelConfig& cfg) {
  const ModelConfig c = resolve_model_config(cfg);
  const ModelFamily& family = model_family(c.arch);
  json j;
  j["architectures"] = json::array(
      {c.num_labels > 0 ? sequence_classifier_class(c.arch) : family.hf_classes(c.arch).front()});
  j["model_type"] = c.arch;
  j["vocab_size"] = c.vocab_size;
  j["initializer_range"] = c.init_std;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["torch_dtype"] = "float32";
  j["use_cache"] = true;
  family.to_hf(c, j);
  if (c.num_labels > 0) {
    json id2label = json::object(), label2id = json::object();
    for (int64_t i = 0; i < c.num_labels; ++i) {
      id2label[std::to_string(i)] = fmt::format("LABEL_{}", i);
      label2id[fmt::format("LABEL_{}", i)] = i;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
    if (c.pad_token_id >= 0) j["pad_token_id"] = c.pad_token_id;
  }
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
  if (names_classifier(r)) {
    c.num_labels = classifier_labels(r);
    if (c.num_labels <= 0) usage_error("{}: num_labels must be positive", where);
    c.pad_token_id = r.integer("pad_token_id", -1);
  }
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
