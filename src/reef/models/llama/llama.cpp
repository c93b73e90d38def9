// Llama-family decoder (see llama.h). Semantics follow transformers' modeling_llama.py,
// modeling_mistral.py, modeling_qwen2.py, modeling_qwen3.py (which differ only in biases, the
// q/k norm and defaults already folded into the resolved ModelConfig), modeling_mixtral.py (the
// MoE block) and modeling_gemma.py (embedding scale, (1 + weight) norms).
#include "reef/models/llama/llama.h"

#include <cmath>

#include "reef/nn/init.h"

namespace reef {

RopeOptions rope_options(const ModelConfig& cfg) {
  return RopeOptions(cfg.head_dim)
      .theta(cfg.rope_theta)
      .scaling(cfg.rope_scaling)
      .factor(cfg.rope_factor)
      .low_freq_factor(cfg.rope_low_freq_factor)
      .high_freq_factor(cfg.rope_high_freq_factor)
      .original_max_seq_len(cfg.rope_original_max_seq_len);
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const ModelConfig& cfg) {
  // Qwen2 puts biases on q/k/v only; the other archs use attention_bias for all four.
  const bool o_bias = cfg.attention_bias && cfg.arch != "qwen2";
  self_attn = register_module("self_attn", Attention(AttentionOptions(cfg.hidden_size, cfg.n_heads)
                                                         .n_kv_heads(cfg.n_kv_heads)
                                                         .head_dim(cfg.head_dim)
                                                         .qkv_bias(cfg.attention_bias)
                                                         .o_bias(o_bias)
                                                         .qk_norm(cfg.qk_norm)
                                                         .norm_eps(cfg.norm_eps)));
  if (cfg.n_experts > 0) {
    block_sparse_moe = register_module(
        "block_sparse_moe", SparseMoE(SparseMoEOptions(cfg.hidden_size, cfg.intermediate_size,
                                                       cfg.n_experts, cfg.n_experts_per_tok)
                                          .activation(cfg.activation)));
  } else {
    mlp = register_module("mlp", GatedMLP(GatedMLPOptions(cfg.hidden_size, cfg.intermediate_size)
                                              .activation(cfg.activation)
                                              .bias(cfg.mlp_bias)));
  }
  const auto norm =
      RMSNormOptions(cfg.hidden_size).eps(cfg.norm_eps).unit_offset(cfg.arch == "gemma");
  input_layernorm = register_module("input_layernorm", RMSNorm(norm));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(norm));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& x, const LayerContext& ctx,
                                             int64_t layer) {
  auto h = x + self_attn(input_layernorm(x), ctx.cos, ctx.sin, ctx.positions.cache, layer);
  if (block_sparse_moe) return h + block_sparse_moe(post_attention_layernorm(h), ctx.router_logits);
  return h + mlp(post_attention_layernorm(h));
}

LlamaModelImpl::LlamaModelImpl(const ModelConfig& cfg) : rope_(rope_options(cfg)) {
  register_tokens("embed_tokens", Embedding(cfg.vocab_size, cfg.hidden_size));
  torch::nn::ModuleList layers;
  for (int64_t i = 0; i < cfg.n_layers; ++i) layers->push_back(LlamaDecoderLayer(cfg));
  register_layers("layers", layers);
  norm = register_module(
      "norm",
      RMSNorm(RMSNormOptions(cfg.hidden_size).eps(cfg.norm_eps).unit_offset(cfg.arch == "gemma")));
  if (cfg.arch == "gemma") embed_scale_ = std::sqrt(static_cast<double>(cfg.hidden_size));
}

torch::Tensor LlamaModelImpl::prepare(const torch::Tensor& embeds, const Positions&) {
  if (embed_scale_ <= 0) return embeds;
  // HF keeps the scale as a float32 tensor and casts it to the activations' dtype before the
  // multiply, so in bf16 it is the bf16-rounded sqrt(hidden_size).
  auto scale = torch::scalar_tensor(static_cast<float>(embed_scale_), torch::kFloat)
                   .to(embeds.device(), embeds.scalar_type());
  return embeds * scale;
}

LayerContext LlamaModelImpl::context(const Positions& p, torch::ScalarType dtype) {
  LayerContext ctx;
  ctx.positions = p;
  std::tie(ctx.cos, ctx.sin) =
      p.cache ? rope_.cos_sin_at(p.ids(), dtype) : rope_.cos_sin(0, p.length, dtype, p.device);
  return ctx;
}

void LlamaModelImpl::drop_final_norm() {
  unregister_module("norm");
  norm = nullptr;
}

}  // namespace reef
