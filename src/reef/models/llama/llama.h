// The llama-family decoder (llama, mistral, mixtral, qwen2, qwen3, gemma): token embedding,
// pre-norm blocks of RoPE attention + gated MLP with RMSNorm, final norm. Mixtral replaces the
// MLP with a sparse MoE block ("block_sparse_moe", as the Hub's Mixtral checkpoints name it);
// Gemma scales the embeddings by sqrt(hidden_size) and uses (1 + weight) RMSNorms. Registered as
// CausalLM's "model" child so parameter names are HF's ("model.layers.0.self_attn.q_proj.weight").
#pragma once

#include <torch/torch.h>

#include "reef/config/config.h"
#include "reef/models/body.h"
#include "reef/nn/attention.h"
#include "reef/nn/mlp.h"
#include "reef/nn/moe.h"
#include "reef/nn/norms.h"
#include "reef/nn/rope.h"

namespace reef {

class LlamaDecoderLayerImpl : public DecoderLayerImpl {
 public:
  explicit LlamaDecoderLayerImpl(const ModelConfig& cfg);  // cfg resolved
  // x [B, T, C] -> [B, T, C] at the context's RoPE tables; a MoE layer appends its router logits
  // [B*T, E] to ctx.router_logits when set.
  torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx, int64_t layer) override;

  Attention self_attn{nullptr};
  GatedMLP mlp{nullptr};                // dense archs
  SparseMoE block_sparse_moe{nullptr};  // mixtral
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

// Children: embed_tokens, layers, norm.
class LlamaModelImpl : public DecoderBodyImpl {
 public:
  explicit LlamaModelImpl(const ModelConfig& cfg);  // cfg resolved
  // gemma's sqrt(hidden_size) scale on every row (prefix vectors too, as HF's inputs_embeds
  // path); the embeddings as they are for the others.
  torch::Tensor prepare(const torch::Tensor& embeds, const Positions& p) override;
  // RoPE tables for the positions (the whole sequence's, also under sequence parallelism).
  LayerContext context(const Positions& p, torch::ScalarType dtype) override;
  torch::Tensor final_norm(const torch::Tensor& h) override { return norm(h); }

  RMSNorm norm{nullptr};

 protected:
  void drop_final_norm() override;

 private:
  RotaryEmbedding rope_;
  double embed_scale_ = 0;  // gemma: sqrt(hidden_size); 0 = no scaling
};
TORCH_MODULE(LlamaModel);

// RoPE options for a resolved llama-family config.
RopeOptions rope_options(const ModelConfig& cfg);

}  // namespace reef
