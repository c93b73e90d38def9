// HF config.json mapping (see hf_config.h). Field names and defaults follow transformers'
// configuration_{llama,mistral,mixtral,qwen2,qwen3,gemma,gpt2}.py.
#include "reef/models/hf_config.h"

#include <algorithm>

#include "reef/base/error.h"
#include "reef/base/log.h"
#include "reef/models/causal_lm.h"

namespace reef {

namespace {

using nlohmann::json;

const char* hf_architecture(const std::string& arch) {
  if (arch == "llama") return "LlamaForCausalLM";
  if (arch == "mistral") return "MistralForCausalLM";
  if (arch == "mixtral") return "MixtralForCausalLM";
  if (arch == "gemma") return "GemmaForCausalLM";
  if (arch == "qwen2") return "Qwen2ForCausalLM";
  if (arch == "qwen3") return "Qwen3ForCausalLM";
  return "GPT2LMHeadModel";
}

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

// Typed access to config.json fields with errors that name the file and the key.
class Reader {
 public:
  Reader(const json& j, const std::string& where) : j_(j), where_(where) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  const json& at(const char* key) const { return j_.at(key); }

  int64_t integer(const char* key) const {
    if (!has(key)) usage_error("{}: missing required field '{}'", where_, key);
    return integer_value(j_.at(key), key);
  }
  int64_t integer(const char* key, int64_t fallback) const {
    return has(key) ? integer_value(j_.at(key), key) : fallback;
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    return number_value(j_.at(key), key);
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_boolean()) usage_error("{}: field '{}' must be true or false", where_, key);
    return j_.at(key).get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_string()) usage_error("{}: field '{}' must be a string", where_, key);
    return j_.at(key).get<std::string>();
  }
  int64_t integer_value(const json& v, const std::string& key) const {
    if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
    if (v.is_number_float() &&
        v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>()))) {
      return static_cast<int64_t>(v.get<double>());
    }
    usage_error("{}: field '{}' must be an integer, got {}", where_, key, v.dump());
  }
  double number_value(const json& v, const std::string& key) const {
    if (!v.is_number())
      usage_error("{}: field '{}' must be a number, got {}", where_, key, v.dump());
    return v.get<double>();
  }
  const std::string& where() const { return where_; }

 private:
  const json& j_;
  const std::string& where_;
};

// RoPE from either rope_parameters (transformers 5) or rope_theta + rope_scaling (classic).
void read_rope(const Reader& r, ModelConfig& c, double default_theta) {
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
  Reader p(*params, r.where());
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

// The HF classes whose checkpoints load into CausalLM: each arch's *ForCausalLM (as written by
// hf_config_json), and GPT2Model, whose keys the Hub's gpt2 checkpoints use.
std::vector<std::string> loadable_architectures() {
  std::vector<std::string> out;
  for (const auto& a : supported_archs()) out.push_back(hf_architecture(a));
  out.push_back("GPT2Model");
  return out;
}

void check_architectures(const Reader& r, const std::string& type) {
  if (!r.has("architectures")) return;
  const json& list = r.at("architectures");
  if (!list.is_array()) usage_error("{}: 'architectures' must be a list", r.where());
  const auto ok = loadable_architectures();
  std::string names;
  for (const auto& n : ok) names += (names.empty() ? "" : ", ") + n;
  for (const auto& a : list) {
    if (!a.is_string()) usage_error("{}: 'architectures' must be a list of class names", r.where());
    const std::string name = a.get<std::string>();
    const bool gpt2_class = name == "GPT2LMHeadModel" || name == "GPT2Model";
    const bool known = std::find(ok.begin(), ok.end(), name) != ok.end();
    if (!known || (type == "gpt2") != gpt2_class ||
        (type != "gpt2" && name != hf_architecture(type))) {
      usage_error("{}: architecture '{}' (model_type '{}') is not supported; supported: {}",
                  r.where(), name, type, names);
    }
  }
}

void check_activation(const Reader& r, const char* key, const std::string& act) {
  if (!is_supported_activation(act)) {
    usage_error("{}: {} '{}' is not supported; supported: {}", r.where(), key, act,
                supported_activations());
  }
}

// Gemma's activation as transformers 5 reads it: hidden_act (default gelu_pytorch_tanh), where
// the original releases' "gelu" means the tanh approximation. transformers 4 read
// hidden_activation instead; a config whose two keys disagree is refused, not guessed.
std::string gemma_activation(const Reader& r) {
  std::string act = r.string("hidden_act", "gelu_pytorch_tanh");
  if (act == "gelu") act = "gelu_pytorch_tanh";
  check_activation(r, "hidden_act", act);
  if (r.has("hidden_activation")) {
    std::string other = r.string("hidden_activation", "");
    if (other == "gelu") other = "gelu_pytorch_tanh";
    if (other != act) {
      usage_error(
          "{}: hidden_act '{}' and hidden_activation '{}' disagree (transformers 5 uses "
          "hidden_act, transformers 4 used hidden_activation); make them equal",
          r.where(), r.string("hidden_act", "gelu_pytorch_tanh"),
          r.string("hidden_activation", ""));
    }
  }
  return act;
}

// Mixtral's MoE keys (MixtralConfig defaults).
void read_moe(const Reader& r, ModelConfig& c) {
  c.n_experts = r.integer("num_local_experts", 8);
  c.n_experts_per_tok = r.integer("num_experts_per_tok", 2);
  c.router_aux_loss_coef = r.number("router_aux_loss_coef", 0.001);
  c.output_router_logits = r.boolean("output_router_logits", false);
  if (c.n_experts < 1) {
    usage_error("{}: num_local_experts must be positive, got {}", r.where(), c.n_experts);
  }
  if (c.n_experts_per_tok < 1 || c.n_experts_per_tok > c.n_experts) {
    usage_error("{}: num_experts_per_tok must be in [1, num_local_experts = {}], got {}", r.where(),
                c.n_experts, c.n_experts_per_tok);
  }
  // Jitter multiplies the router input by random noise in training; Reef does not draw it.
  if (r.number("router_jitter_noise", 0.0) != 0.0) {
    usage_error("{}: router_jitter_noise={} is not supported (only 0)", r.where(),
                r.number("router_jitter_noise", 0.0));
  }
}

ModelConfig llama_family_from_hf(const Reader& r, const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("hidden_size");
  c.intermediate_size = r.integer("intermediate_size");
  c.n_layers = r.integer("num_hidden_layers");
  c.n_heads = r.integer("num_attention_heads");
  c.n_kv_heads = r.integer("num_key_value_heads", c.n_heads);
  // Qwen3Config defaults head_dim to 128; the others derive it.
  // Qwen3Config defaults head_dim to 128 and GemmaConfig to 256; the others derive it.
  c.head_dim = r.integer("head_dim", arch == "qwen3" ? 128 : arch == "gemma" ? 256 : 0);
  if (arch == "gemma") {
    c.activation = gemma_activation(r);
  } else {
    c.activation = r.string("hidden_act", "silu");
    check_activation(r, "hidden_act", c.activation);
  }
  const int64_t default_max_pos = arch == "llama"                          ? 2048
                                  : arch == "mistral" || arch == "mixtral" ? 131072
                                  : arch == "gemma"                        ? 8192
                                                                           : 32768;
  c.max_seq_len = r.integer("max_position_embeddings", default_max_pos);
  c.norm_eps = r.number("rms_norm_eps", arch == "mixtral" ? 1e-5 : 1e-6);
  c.init_std = r.number("initializer_range", 0.02);
  c.tie_embeddings = r.boolean("tie_word_embeddings", arch == "gemma");
  c.attention_bias = arch == "qwen2" || ((arch == "llama" || arch == "qwen3" || arch == "gemma") &&
                                         r.boolean("attention_bias", false));
  c.mlp_bias = arch == "llama" && r.boolean("mlp_bias", false);
  c.qk_norm = arch == "qwen3";
  read_rope(r, c, arch == "mixtral" ? 1000000.0 : 10000.0);
  if (arch == "mixtral") read_moe(r, c);
  if (arch == "gemma") {
    if (!c.tie_embeddings) {
      usage_error(
          "{}: tie_word_embeddings=false is not supported for gemma (Gemma ties its "
          "embeddings)",
          r.where());
    }
    if (r.boolean("use_bidirectional_attention", false)) {
      usage_error("{}: use_bidirectional_attention=true is not supported (causal decoders only)",
                  r.where());
    }
  }

  // Sliding-window attention only differs from full attention past the window.
  int64_t window = 0;
  if ((arch == "mistral" || arch == "mixtral") && r.has("sliding_window")) {
    window = r.integer("sliding_window");
  }
  if ((arch == "qwen2" || arch == "qwen3") && r.boolean("use_sliding_window", false) &&
      r.has("sliding_window") && r.integer("max_window_layers", 28) < c.n_layers) {
    window = r.integer("sliding_window");
  }
  if (window > 0 && window < c.max_seq_len) {
    log_warn("{}: sliding_window {} is not implemented; max_seq_len capped from {} to {}",
             r.where(), window, c.max_seq_len, window);
    c.max_seq_len = window;
  }
  return c;
}

ModelConfig gpt2_from_hf(const Reader& r) {
  ModelConfig c;
  c.arch = "gpt2";
  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("n_embd");
  c.n_layers = r.integer("n_layer");
  c.n_heads = r.integer("n_head");
  c.intermediate_size = r.integer("n_inner", 0);
  c.max_seq_len = r.integer("n_positions", r.integer("n_ctx", 1024));
  c.activation = r.string("activation_function", "gelu_new");
  check_activation(r, "activation_function", c.activation);
  c.norm_eps = r.number("layer_norm_epsilon", 1e-5);
  c.init_std = r.number("initializer_range", 0.02);
  c.tie_embeddings = r.boolean("tie_word_embeddings", true);
  if (!r.boolean("scale_attn_weights", true)) {
    usage_error("{}: scale_attn_weights=false is not supported", r.where());
  }
  if (r.boolean("scale_attn_by_inverse_layer_idx", false)) {
    usage_error("{}: scale_attn_by_inverse_layer_idx=true is not supported", r.where());
  }
  if (r.boolean("add_cross_attention", false)) {
    usage_error("{}: add_cross_attention=true is not supported (decoder-only models)", r.where());
  }
  // reorder_and_upcast_attn only changes fp16 rounding, not the function; accepted.
  return c;
}

}  // namespace

nlohmann::json hf_config_json(const ModelConfig& cfg) {
  const ModelConfig c = resolve_model_config(cfg);
  json j;
  j["architectures"] = json::array({hf_architecture(c.arch)});
  j["model_type"] = c.arch;
  j["vocab_size"] = c.vocab_size;
  j["initializer_range"] = c.init_std;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["torch_dtype"] = "float32";
  j["use_cache"] = true;
  if (c.arch == "gpt2") {
    j["n_embd"] = c.hidden_size;
    j["n_layer"] = c.n_layers;
    j["n_head"] = c.n_heads;
    j["n_inner"] = c.intermediate_size;
    j["n_positions"] = c.max_seq_len;
    j["n_ctx"] = c.max_seq_len;  // older readers (and llama.cpp's converter) look here
    j["activation_function"] = c.activation;
    j["layer_norm_epsilon"] = c.norm_eps;
    j["scale_attn_weights"] = true;
    j["scale_attn_by_inverse_layer_idx"] = false;
    j["reorder_and_upcast_attn"] = false;
    j["resid_pdrop"] = 0.0;
    j["embd_pdrop"] = 0.0;
    j["attn_pdrop"] = 0.0;
    return j;
  }
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = c.activation;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = rope_scaling_json(c);
  j["attention_dropout"] = 0.0;
  if (c.arch == "mixtral") {
    j["num_local_experts"] = c.n_experts;
    j["num_experts_per_tok"] = c.n_experts_per_tok;
    j["router_aux_loss_coef"] = c.router_aux_loss_coef;
    j["output_router_logits"] = c.output_router_logits;
    j["router_jitter_noise"] = 0.0;
    j["sliding_window"] = nullptr;
  }
  if (c.arch == "gemma") {
    j["hidden_activation"] = c.activation;  // what transformers 4 reads
    j["attention_bias"] = c.attention_bias;
  }
  if (c.arch == "llama") {
    j["attention_bias"] = c.attention_bias;
    j["mlp_bias"] = c.mlp_bias;
    j["pretraining_tp"] = 1;
  } else if (c.arch == "qwen3") {
    j["attention_bias"] = c.attention_bias;
  }
  if (c.arch == "mistral") j["sliding_window"] = nullptr;
  if (c.arch == "qwen2" || c.arch == "qwen3") {
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
    j["max_window_layers"] = c.n_layers;
  }
  return j;
}

ModelConfig model_config_from_hf(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) usage_error("{}: expected a JSON object", where);
  Reader r(j, where);
  if (!r.has("model_type")) {
    usage_error("{}: no 'model_type'; supported: {}", where, supported_archs_list());
  }
  const std::string type = r.string("model_type", "");
  const auto& archs = supported_archs();
  if (std::find(archs.begin(), archs.end(), type) == archs.end()) {
    usage_error("{}: model_type '{}' is not supported; supported: {}", where, type,
                supported_archs_list());
  }
  check_architectures(r, type);
  ModelConfig c = type == "gpt2" ? gpt2_from_hf(r) : llama_family_from_hf(r, type);
  try {
    return resolve_model_config(c);
  } catch (const Error& e) {
    usage_error("{}: {}", where, e.what());
  }
}

std::string hf_parameter_name(const ModelConfig& cfg, const std::string& tensor_name) {
  if (cfg.arch == "gpt2") return gpt2_parameter_name(tensor_name);
  if (cfg.arch == "mixtral" && (tensor_name.find(".mlp.experts.") != std::string::npos ||
                                tensor_name.find(".mlp.gate.") != std::string::npos)) {
    usage_error(
        "tensor '{}' is in transformers' fused in-memory expert layout; Reef reads "
        "Mixtral checkpoints in the Hub layout (block_sparse_moe.gate, "
        "block_sparse_moe.experts.N.w1/w2/w3) that save_pretrained writes",
        tensor_name);
  }
  return tensor_name;
}

}  // namespace reef
