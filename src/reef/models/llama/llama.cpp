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

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                             const torch::Tensor& sin, AttentionCache* cache,
                                             int64_t layer,
                                             std::vector<torch::Tensor>* router_logits) {
  auto h = x + self_attn(input_layernorm(x), cos, sin, cache, layer);
  if (block_sparse_moe) return h + block_sparse_moe(post_attention_layernorm(h), router_logits);
  return h + mlp(post_attention_layernorm(h));
}

LlamaModelImpl::LlamaModelImpl(const ModelConfig& cfg) : rope_(rope_options(cfg)) {
  embed_tokens = register_module(
      "embed_tokens", torch::nn::Embedding(embedding_options(cfg.vocab_size, cfg.hidden_size)));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.n_layers; ++i) layers->push_back(LlamaDecoderLayer(cfg));
  norm = register_module(
      "norm",
      RMSNorm(RMSNormOptions(cfg.hidden_size).eps(cfg.norm_eps).unit_offset(cfg.arch == "gemma")));
  if (cfg.arch == "gemma") embed_scale_ = std::sqrt(static_cast<double>(cfg.hidden_size));
}

torch::Tensor LlamaModelImpl::forward(const torch::Tensor& input_ids, AttentionCache* cache,
                                      std::vector<torch::Tensor>* router_logits) {
  return forward_embeds(embed_fn ? embed_fn(input_ids) : embed_tokens(input_ids), cache,
                        router_logits);
}

// One forward path: forward / forward_embeds and the pipeline pieces (embed, run_layers, then
// norm) all go through scale_embeddings and run_range.
torch::Tensor LlamaModelImpl::scale_embeddings(torch::Tensor h) const {
  if (embed_scale_ > 0) {
    // HF keeps the scale as a float32 tensor and casts it to the weights' dtype before the
    // multiply, so in bf16 it is the bf16-rounded sqrt(hidden_size).
    auto scale = torch::scalar_tensor(static_cast<float>(embed_scale_), torch::kFloat)
                     .to(h.device(), embed_tokens->weight.scalar_type());
    h = h * scale;
  }
  return h;
}

torch::Tensor LlamaModelImpl::run_range(torch::Tensor h, int64_t begin, int64_t end,
                                        AttentionCache* cache,
                                        std::vector<torch::Tensor>* router_logits) {
  const int64_t T = h.size(1) * sequence_shards;  // the whole sequence's length
  auto [cos, sin] =
      cache ? rope_.cos_sin_at(cache->positions(h.size(0), T, h.device()), h.scalar_type())
            : rope_.cos_sin(0, T, h.scalar_type(), h.device());
  for (int64_t i = begin; i < end; ++i) {
    auto run = [&](const torch::Tensor& x) {
      return layers->at<LlamaDecoderLayerImpl>(static_cast<size_t>(i))
          .forward(x, cos, sin, cache, i, router_logits);
    };
    h = layer_hook ? layer_hook(i, h, run) : run(h);
  }
  return h;
}

torch::Tensor LlamaModelImpl::embed(const torch::Tensor& input_ids) {
  return scale_embeddings(embed_fn ? embed_fn(input_ids) : embed_tokens(input_ids));
}

torch::Tensor LlamaModelImpl::run_layers(torch::Tensor h, int64_t begin, int64_t end) {
  return run_range(std::move(h), begin, end, nullptr, nullptr);
}

torch::Tensor LlamaModelImpl::forward_embeds(const torch::Tensor& embeds, AttentionCache* cache,
                                             std::vector<torch::Tensor>* router_logits) {
  const auto n = static_cast<int64_t>(layers->size());
  return norm(run_range(scale_embeddings(embeds), 0, n, cache, router_logits));
}

}  // namespace reef
