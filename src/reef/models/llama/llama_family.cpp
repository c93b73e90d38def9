// The llama family (llama, mistral, mixtral, qwen2, qwen3, gemma): RoPE + RMSNorm + gated MLP
// (mixtral: sparse experts). Its config rules, derived values and tensor-parallel plan, and its
// registration (models/family.cpp lists llama_family()).
#include "reef/models/llama/llama_family.h"

namespace reef {
namespace {

void check_llama(const ModelConfig& m, const ConfigChecker& c) {
  const std::string& a = m.arch;
  // transformers reads a Gemma config's "gelu" as the tanh approximation, so the exact GELU
  // could not round-trip through config.json.
  if (a == "gemma" && m.activation == "gelu")
    c.fail("model.activation",
           "gelu_pytorch_tanh or another activation for arch gemma (transformers reads Gemma's "
           "gelu as gelu_pytorch_tanh)",
           "'gelu'");
  if (m.qk_norm && a != "qwen3")
    c.fail("model.qk_norm", fmt::format("false for arch {} (only qwen3 has q/k norms)", a), "true");
  if (m.mlp_bias && a != "llama")
    c.fail("model.mlp_bias", fmt::format("false for arch {} (only llama has MLP biases)", a),
           "true");
  if (m.attention_bias && (a == "mistral" || a == "mixtral"))
    c.fail("model.attention_bias", fmt::format("false for arch {} (it has no attention biases)", a),
           "true");
  if (a == "mixtral") {
    const int64_t experts = m.n_experts > 0 ? m.n_experts : 8;
    if (m.n_experts_per_tok < 1 || m.n_experts_per_tok > experts) {
      c.fail("model.n_experts_per_tok",
             fmt::format("a value in [1, model.n_experts] ({})",
                         c.ref("model.n_experts", std::to_string(experts))),
             std::to_string(m.n_experts_per_tok));
    }
  } else if (m.n_experts != 0) {
    c.fail("model.n_experts", fmt::format("0 for the dense arch {} (only mixtral has experts)", a),
           std::to_string(m.n_experts));
  }
}

void derive_llama(ModelConfig& m) {
  if (m.n_kv_heads == 0) m.n_kv_heads = m.n_heads;
  if (m.head_dim == 0 && m.n_heads > 0) m.head_dim = m.hidden_size / m.n_heads;
  // SwiGLU keeps the parameter count of a 4x MLP with 2/3 of the width, rounded up to 64
  // (Llama's multiple_of).
  if (m.intermediate_size == 0) m.intermediate_size = (8 * m.hidden_size + 191) / 192 * 64;
  if (m.activation.empty() || m.activation == "auto")
    m.activation = m.arch == "gemma" ? "gelu_pytorch_tanh" : "silu";
  if (m.rope_scaling.empty() || m.rope_scaling == "default") m.rope_scaling = "none";
  if (m.arch == "mixtral" && m.n_experts == 0) m.n_experts = 8;  // MixtralConfig's default
  if (m.arch == "qwen2") m.attention_bias = true;                // HF Qwen2 hard-codes q/k/v biases
  if (m.arch == "qwen3") m.qk_norm = true;                       // and Qwen3 its q/k norms
  if (m.arch == "gemma") m.tie_embeddings = true;                // GemmaForCausalLM always ties
}

// Megatron-LM's split (torchtitan's parallelize_llama): q/k/v and gate/up column-parallel with
// whole (kv) heads per rank, o/down row-parallel, embedding and LM head by vocabulary. Qwen3's
// per-head q/k norms see only this rank's heads.
std::vector<TpRule> llama_tp_plan() {
  return {
      {"model.embed_tokens", TpStyle::kVocab},
      {"model.layers.*.self_attn", TpStyle::kGatherInput},
      {"model.layers.*.self_attn.q_proj", TpStyle::kColumn},
      {"model.layers.*.self_attn.k_proj", TpStyle::kColumn},
      {"model.layers.*.self_attn.v_proj", TpStyle::kColumn},
      {"model.layers.*.self_attn.o_proj", TpStyle::kRow},
      {"model.layers.*.self_attn.q_norm", TpStyle::kPartialGrad},
      {"model.layers.*.self_attn.k_norm", TpStyle::kPartialGrad},
      {"model.layers.*.mlp", TpStyle::kGatherInput},
      {"model.layers.*.mlp.gate_proj", TpStyle::kColumn},
      {"model.layers.*.mlp.up_proj", TpStyle::kColumn},
      {"model.layers.*.mlp.down_proj", TpStyle::kRow},
      {"lm_head", TpStyle::kVocab},
      {"logits", TpStyle::kGatherInput},  // the LM head's matmul, tied or not
  };
}

int64_t llama_count_parameters(const ModelConfig& c, bool include_embeddings) {
  const int64_t C = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  int64_t per_layer = C * q + 2 * C * kv + q * C;  // q, k, v, o
  if (c.attention_bias) per_layer += q + 2 * kv + (c.arch == "qwen2" ? 0 : C);
  if (c.qk_norm) per_layer += 2 * c.head_dim;
  if (c.n_experts > 0) {
    per_layer += c.n_experts * (C + 3 * C * I);  // router row + SwiGLU expert, per expert
  } else {
    per_layer += 3 * C * I + (c.mlp_bias ? 2 * I + C : 0);
  }
  per_layer += 2 * C;  // input_layernorm, post_attention_layernorm
  int64_t total = c.n_layers * per_layer + C /* norm */ + head_parameters(c);
  return include_embeddings ? total + V * C : total;
}

// A MoE token pays for its router and its active experts only.
double llama_layer_matmul_weights(const ModelConfig& c) {
  const double C = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double q = static_cast<double>(c.n_heads * c.head_dim);
  const double kv = static_cast<double>(c.n_kv_heads * c.head_dim);
  const double mlp = c.n_experts > 0 ? static_cast<double>(c.n_experts) * C +
                                           static_cast<double>(c.n_experts_per_tok) * 3 * C * I
                                     : 3 * C * I;
  return C * q + 2 * C * kv + q * C + mlp;
}

// llama.cpp runs mistral and mixtral as its llama architecture (mixtral with expert tensors).
std::string llama_gguf_arch(const std::string& arch) {
  return arch == "mistral" || arch == "mixtral" ? "llama" : arch;
}

GgufNames llama_gguf_names() {
  GgufNames n;
  n.layers_prefix = "model.layers.";
  n.top = {{"model.embed_tokens.weight", "token_embd.weight"},
           {"model.norm.weight", "output_norm.weight"},
           {"lm_head.weight", "output.weight"}};
  n.block = {{"input_layernorm", "attn_norm"},    {"post_attention_layernorm", "ffn_norm"},
             {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},
             {"self_attn.v_proj", "attn_v"},      {"self_attn.o_proj", "attn_output"},
             {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},
             {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},
             {"mlp.down_proj", "ffn_down"},       {"block_sparse_moe.gate", "ffn_gate_inp"}};
  return n;
}

}  // namespace

const ModelFamily& llama_family() {
  static const ModelFamily f = [] {
    ModelFamily k;
    k.name = "llama";
    k.archs = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma"};
    k.uses_rope = true;
    k.check = check_llama;
    k.derive = derive_llama;
    k.presets = llama_presets;
    k.hf_classes = llama_hf_classes;
    k.to_hf = llama_to_hf;
    k.from_hf = llama_from_hf;
    k.hf_parameter_name = llama_hf_parameter_name;
    k.gguf_archs = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma"};
    k.gguf_arch = llama_gguf_arch;
    k.gguf_names = llama_gguf_names();
    k.count_parameters = llama_count_parameters;
    k.layer_matmul_weights = llama_layer_matmul_weights;
    k.tp_archs = {"llama", "mistral", "qwen2", "qwen3", "gemma"};  // mixtral's experts: not yet
    k.tp_plan = llama_tp_plan();
    return k;
  }();
  return f;
}

}  // namespace reef
