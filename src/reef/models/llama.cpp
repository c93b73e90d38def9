// Llama-family decoder (see llama.h). Semantics follow transformers' modeling_llama.py,
// modeling_mistral.py, modeling_qwen2.py and modeling_qwen3.py (which differ only in biases, the
// q/k norm and defaults already folded into the resolved ModelConfig).
#include "reef/models/llama.h"

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
  mlp = register_module("mlp", GatedMLP(GatedMLPOptions(cfg.hidden_size, cfg.intermediate_size)
                                            .activation(cfg.activation)
                                            .bias(cfg.mlp_bias)));
  input_layernorm = register_module("input_layernorm",
                                    RMSNorm(RMSNormOptions(cfg.hidden_size).eps(cfg.norm_eps)));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", RMSNorm(RMSNormOptions(cfg.hidden_size).eps(cfg.norm_eps)));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                             const torch::Tensor& sin, AttentionCache* cache,
                                             int64_t layer) {
  auto h = x + self_attn(input_layernorm(x), cos, sin, cache, layer);
  return h + mlp(post_attention_layernorm(h));
}

LlamaModelImpl::LlamaModelImpl(const ModelConfig& cfg) : rope_(rope_options(cfg)) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(torch::nn::EmbeddingOptions(
                                                     cfg.vocab_size, cfg.hidden_size)));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.n_layers; ++i) layers->push_back(LlamaDecoderLayer(cfg));
  norm = register_module("norm", RMSNorm(RMSNormOptions(cfg.hidden_size).eps(cfg.norm_eps)));
}

torch::Tensor LlamaModelImpl::forward(const torch::Tensor& input_ids, AttentionCache* cache) {
  auto h = embed_tokens(input_ids);  // [B, T, C]
  auto [cos, sin] =
      cache ? rope_.cos_sin_at(cache->positions(input_ids.size(0), input_ids.size(1), h.device()),
                               h.scalar_type())
            : rope_.cos_sin(0, input_ids.size(1), h.scalar_type(), h.device());
  for (size_t i = 0; i < layers->size(); ++i) {
    h = layers->at<LlamaDecoderLayerImpl>(i).forward(h, cos, sin, cache, static_cast<int64_t>(i));
  }
  return norm(h);
}

}  // namespace reef
