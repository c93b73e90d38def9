// The gpt2 family: learned positions, LayerNorm, Conv1D projections with biases everywhere.
// Its config rules, derived values and presets, and its registration (models/family.cpp lists
// gpt2_family()). It has no tensor-parallel plan yet.
#include "reef/models/gpt2/gpt2_family.h"

namespace reef {
namespace {

void check_gpt2(const ModelConfig& m, const ConfigChecker& c) {
  if (!m.rope_scaling.empty() && m.rope_scaling != "none" && m.rope_scaling != "default") {
    c.fail("model.rope_scaling", "none (gpt2 has learned positions, not RoPE)",
           "'" + m.rope_scaling + "'");
  }
  if (m.n_kv_heads != 0 && m.n_kv_heads != m.n_heads) {
    c.fail("model.n_kv_heads",
           fmt::format("0 or model.n_heads (gpt2 has no grouped-query attention; {})",
                       c.ref("model.n_heads", std::to_string(m.n_heads))),
           std::to_string(m.n_kv_heads));
  }
  if (m.head_dim != 0 && m.head_dim * m.n_heads != m.hidden_size) {
    c.fail("model.head_dim",
           fmt::format("0 or hidden_size / n_heads (gpt2 heads span the width; {})",
                       c.ref("model.n_heads", std::to_string(m.n_heads))),
           std::to_string(m.head_dim));
  }
  if (m.qk_norm) c.fail("model.qk_norm", "false for arch gpt2 (only qwen3 has q/k norms)", "true");
  if (m.n_experts != 0) {
    c.fail("model.n_experts", "0 for the dense arch gpt2 (only mixtral has experts)",
           std::to_string(m.n_experts));
  }
}

void derive_gpt2(ModelConfig& m) {
  if (m.n_kv_heads == 0) m.n_kv_heads = m.n_heads;
  if (m.head_dim == 0 && m.n_heads > 0) m.head_dim = m.hidden_size / m.n_heads;
  if (m.intermediate_size == 0) m.intermediate_size = 4 * m.hidden_size;
  if (m.activation.empty() || m.activation == "auto") m.activation = "gelu_new";
  if (m.rope_scaling.empty() || m.rope_scaling == "default") m.rope_scaling = "none";
  m.attention_bias = true;  // GPT-2 has biases on every projection
  m.mlp_bias = true;
}

int64_t gpt2_count_parameters(const ModelConfig& c, bool include_embeddings) {
  const int64_t C = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  const int64_t per_layer =
      2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * I + I) + (I * C + C);
  int64_t total = c.n_layers * per_layer + 2 * C /* ln_f */ + head_parameters(c);
  return include_embeddings ? total + V * C + c.max_seq_len * C : total;
}

double gpt2_layer_matmul_weights(const ModelConfig& c) {
  const double C = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  return 4 * C * C + 2 * C * I;  // c_attn (q, k, v), attn.c_proj, c_fc, mlp.c_proj
}

std::string gpt2_gguf_arch(const std::string&) { return "gpt2"; }

GgufNames gpt2_gguf_names() {
  GgufNames n;
  n.layers_prefix = "transformer.h.";
  n.top = {{"transformer.wte.weight", "token_embd.weight"},
           {"transformer.wpe.weight", "position_embd.weight"},
           {"transformer.ln_f.weight", "output_norm.weight"},
           {"transformer.ln_f.bias", "output_norm.bias"},
           {"lm_head.weight", "output.weight"}};
  n.block = {{"ln_1", "attn_norm"},          {"ln_2", "ffn_norm"},   {"attn.c_attn", "attn_qkv"},
             {"attn.c_proj", "attn_output"}, {"mlp.c_fc", "ffn_up"}, {"mlp.c_proj", "ffn_down"}};
  return n;
}

}  // namespace

std::map<std::string, PresetKeys> gpt2_presets() {
  std::map<std::string, PresetKeys> p;
  p["gpt2-tiny"] = {
      {"model.arch", "gpt2"},           {"model.vocab_size", "0"},
      {"model.hidden_size", "128"},     {"model.intermediate_size", "512"},
      {"model.n_layers", "4"},          {"model.n_heads", "4"},
      {"model.n_kv_heads", "0"},        {"model.head_dim", "0"},
      {"model.max_seq_len", "256"},     {"model.norm_eps", "1e-5"},
      {"model.rope_scaling", "none"},   {"model.activation", "gelu_new"},
      {"model.attention_bias", "true"}, {"model.mlp_bias", "true"},
      {"model.qk_norm", "false"},       {"model.tie_embeddings", "true"},
      {"model.init_std", "0.02"},
  };

  // GPT-2 small (124M): learned positions, LayerNorm, gelu_new, biases everywhere, tied head.
  p["gpt2"] = {
      {"model.arch", "gpt2"},           {"model.vocab_size", "50257"},
      {"model.hidden_size", "768"},     {"model.intermediate_size", "3072"},
      {"model.n_layers", "12"},         {"model.n_heads", "12"},
      {"model.n_kv_heads", "0"},        {"model.head_dim", "0"},
      {"model.max_seq_len", "1024"},    {"model.norm_eps", "1e-5"},
      {"model.rope_scaling", "none"},   {"model.activation", "gelu_new"},
      {"model.attention_bias", "true"}, {"model.mlp_bias", "true"},
      {"model.qk_norm", "false"},       {"model.tie_embeddings", "true"},
      {"model.init_std", "0.02"},
  };
  return p;
}

const ModelFamily& gpt2_family() {
  static const ModelFamily f = [] {
    ModelFamily k;
    k.name = "gpt2";
    k.archs = {"gpt2"};
    k.uses_rope = false;
    k.check = check_gpt2;
    k.derive = derive_gpt2;
    k.presets = gpt2_presets;
    k.hf_classes = gpt2_hf_classes;
    k.to_hf = gpt2_to_hf;
    k.from_hf = gpt2_from_hf;
    k.hf_parameter_name = gpt2_hf_parameter_name_of;
    k.count_parameters = gpt2_count_parameters;
    k.layer_matmul_weights = gpt2_layer_matmul_weights;
    k.gguf_archs = {"gpt2"};
    k.gguf_arch = gpt2_gguf_arch;
    k.gguf_names = gpt2_gguf_names();
    return k;  // no tp_plan: tensor parallelism refuses gpt2
  }();
  return f;
}

}  // namespace reef
