// The llama-family decoder (llama, mistral, mixtral, qwen2, qwen3, gemma): token embedding,
// pre-norm blocks of RoPE attention + gated MLP with RMSNorm, final norm. Mixtral replaces the
// MLP with a sparse MoE block ("block_sparse_moe", as the Hub's Mixtral checkpoints name it);
// Gemma scales the embeddings by sqrt(hidden_size) and uses (1 + weight) RMSNorms. Registered as
// CausalLM's "model" child so parameter names are HF's ("model.layers.0.self_attn.q_proj.weight").
#pragma once

#include <torch/torch.h>

#include <functional>

#include "reef/config/config.h"
#include "reef/nn/attention.h"
#include "reef/nn/kv_cache.h"
#include "reef/nn/mlp.h"
#include "reef/nn/moe.h"
#include "reef/nn/norms.h"
#include "reef/nn/rope.h"

namespace reef {

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaDecoderLayerImpl(const ModelConfig& cfg);  // cfg resolved
  // x [B, T, C], cos/sin [T, D] or [B, 1, T, D] -> [B, T, C]. A MoE layer appends
  // its router logits [B*T, E] to router_logits when given.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        AttentionCache* cache, int64_t layer,
                        std::vector<torch::Tensor>* router_logits = nullptr);

  Attention self_attn{nullptr};
  GatedMLP mlp{nullptr};                // dense archs
  SparseMoE block_sparse_moe{nullptr};  // mixtral
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const ModelConfig& cfg);  // cfg resolved
  // input_ids [B, T] -> final-normed hidden states [B, T, C]; positions are the cache's
  // (cache->positions: after its history), 0.. without one. MoE layers append their router
  // logits [B*T, E], in layer order, to router_logits if given.
  torch::Tensor forward(const torch::Tensor& input_ids, AttentionCache* cache,
                        std::vector<torch::Tensor>* router_logits = nullptr);
  // The same from token embeddings [B, T, C] (embed_tokens' output, or prompt-tuning vectors
  // before it); gemma's sqrt(hidden) scale applies to every row, as HF's inputs_embeds path.
  torch::Tensor forward_embeds(const torch::Tensor& embeds, AttentionCache* cache,
                               std::vector<torch::Tensor>* router_logits = nullptr);
  const torch::Tensor& token_embedding() const { return embed_tokens->weight; }  // [V, C]

  // The pieces of forward() without a cache, for pipeline stages: embed, the decoder layers
  // [begin, end) at positions 0..T-1, and `norm` after the last.
  torch::Tensor embed(const torch::Tensor& input_ids);                    // [B, T] -> [B, T, C]
  torch::Tensor run_layers(torch::Tensor h, int64_t begin, int64_t end);  // [B, T, C] -> [B, T, C]

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  // A generic extension point: replaces the token lookup embed_tokens(ids) (input_ids [B, T] ->
  // [B, T, C]); parallel/ installs a vocab-parallel lookup. Null: the plain embedding.
  std::function<torch::Tensor(const torch::Tensor&)> embed_fn;
  // A generic extension point around each decoder layer: called with the layer's index, its
  // input [B, T, C] and a function that runs the layer; returns the layer's output [B, T, C]
  // (parallel/fsdp.h gathers the layer's sharded parameters around it). Null: the layer runs.
  std::function<torch::Tensor(int64_t, const torch::Tensor&,
                              const std::function<torch::Tensor(const torch::Tensor&)>&)>
      layer_hook;
  // A generic extension point: the hidden states between the decoder layers hold 1 /
  // sequence_shards of the sequence (parallel/ sets it for sequence parallelism; the attention's
  // input hook gathers the whole sequence back). RoPE positions span h.size(1) * sequence_shards.
  int64_t sequence_shards = 1;

 private:
  // gemma's sqrt(hidden_size) scale of the embeddings [B, T, C] (as is for the others).
  torch::Tensor scale_embeddings(torch::Tensor h) const;
  // Decoder layers [begin, end) over h [B, T, C]: RoPE positions from the cache (0.. without).
  torch::Tensor run_range(torch::Tensor h, int64_t begin, int64_t end, AttentionCache* cache,
                          std::vector<torch::Tensor>* router_logits);

  RotaryEmbedding rope_;
  double embed_scale_ = 0;  // gemma: sqrt(hidden_size); 0 = no scaling
};
TORCH_MODULE(LlamaModel);

// RoPE options for a resolved llama-family config.
RopeOptions rope_options(const ModelConfig& cfg);

}  // namespace reef
