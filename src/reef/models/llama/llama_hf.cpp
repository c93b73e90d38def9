// The llama family's Hugging Face config.json mapping: field names and defaults follow
// transformers' configuration_{llama,mistral,mixtral,qwen2,qwen3,gemma}.py.
#include "reef/base/error.h"
#include "reef/base/log.h"
#include "reef/models/llama/llama_family.h"

namespace reef {
namespace {

using nlohmann::json;

// Gemma's activation as transformers 5 reads it: hidden_act (default gelu_pytorch_tanh), where
// the original releases' "gelu" means the tanh approximation. transformers 4 read
// hidden_activation instead; a config whose two keys disagree is refused, not guessed.
std::string gemma_activation(const HfReader& r) {
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
void read_moe(const HfReader& r, ModelConfig& c) {
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

}  // namespace

std::vector<std::string> llama_hf_classes(const std::string& arch) {
  if (arch == "llama") return {"LlamaForCausalLM"};
  if (arch == "mistral") return {"MistralForCausalLM"};
  if (arch == "mixtral") return {"MixtralForCausalLM"};
  if (arch == "gemma") return {"GemmaForCausalLM"};
  if (arch == "qwen2") return {"Qwen2ForCausalLM"};
  return {"Qwen3ForCausalLM"};
}

ModelConfig llama_from_hf(const HfReader& r, const std::string& arch) {
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

void llama_to_hf(const ModelConfig& c, json& j) {
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
}

std::string llama_hf_parameter_name(const ModelConfig& cfg, const std::string& tensor_name) {
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
