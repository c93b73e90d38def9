// The shared config.json reading helpers (see hf_reader.h).
#include "reef/models/hf_reader.h"

#include "reef/nn/mlp.h"

namespace reef {

using nlohmann::json;

json rope_scaling_json(const ModelConfig& c) {
  if (c.rope_scaling == "none") return nullptr;
  json r = {{"rope_type", c.rope_scaling}, {"factor", c.rope_factor}};
  if (c.rope_scaling == "llama3") {
    r["low_freq_factor"] = c.rope_low_freq_factor;
    r["high_freq_factor"] = c.rope_high_freq_factor;
    r["original_max_position_embeddings"] = c.rope_original_max_seq_len;
  }
  return r;
}

// RoPE from either rope_parameters (transformers 5) or rope_theta + rope_scaling (classic).
void read_rope(const HfReader& r, ModelConfig& c, double default_theta) {
  c.rope_theta = r.number("rope_theta", default_theta);
  const json* params = nullptr;
  const char* key = "rope_scaling";
  if (r.has("rope_parameters")) {
    params = &r.at("rope_parameters");
    key = "rope_parameters";
  } else if (r.has("rope_scaling")) {
    params = &r.at("rope_scaling");
  }
  c.rope_scaling = "none";
  if (params == nullptr) return;
  if (!params->is_object()) usage_error("{}: '{}' must be an object", r.where(), key);
  HfReader p(*params, r.where());
  c.rope_theta = p.number("rope_theta", c.rope_theta);
  std::string type = p.string("rope_type", p.string("type", "default"));
  if (p.number("partial_rotary_factor", 1.0) != 1.0) {
    usage_error("{}: partial_rotary_factor is not supported (Reef rotates the whole head)",
                r.where());
  }
  if (type == "default") return;
  if (type != "linear" && type != "llama3") {
    usage_error("{}: RoPE type '{}' in '{}' is not supported; supported: default, linear, llama3",
                r.where(), type, key);
  }
  c.rope_scaling = type;
  if (!p.has("factor")) usage_error("{}: '{}' of type {} needs 'factor'", r.where(), key, type);
  c.rope_factor = p.number("factor", 1.0);
  if (type == "llama3") {
    auto need = [&](const char* k) {
      if (!p.has(k)) usage_error("{}: '{}' of type llama3 needs '{}'", r.where(), key, k);
    };
    need("low_freq_factor");
    need("high_freq_factor");
    c.rope_low_freq_factor = p.number("low_freq_factor", 1.0);
    c.rope_high_freq_factor = p.number("high_freq_factor", 4.0);
    c.rope_original_max_seq_len =
        p.integer("original_max_position_embeddings", r.integer("max_position_embeddings", 8192));
  }
}

void check_activation(const HfReader& r, const char* key, const std::string& act) {
  if (!is_supported_activation(act)) {
    usage_error("{}: {} '{}' is not supported; supported: {}", r.where(), key, act,
                supported_activations());
  }
}

}  // namespace reef
