// GPT-2: learned token and position embeddings (wte, wpe), pre-LayerNorm blocks with a fused
// qkv Conv1D attention and a Conv1D MLP, final LayerNorm. Registered as CausalLM's "transformer"
// child so parameter names are HF's ("transformer.h.0.attn.c_attn.weight"). HF's non-persistent
// attn.bias mask buffers are not reproduced: causality comes from the attention kernel.
#pragma once

#include <torch/torch.h>

#include "reef/config/config.h"
#include "reef/nn/kv_cache.h"
#include "reef/nn/mlp.h"
#include "reef/nn/norms.h"

namespace reef {

class GPT2AttentionImpl : public torch::nn::Module {
 public:
  explicit GPT2AttentionImpl(const ModelConfig& cfg);  // cfg resolved
  torch::Tensor forward(const torch::Tensor& x, AttentionCache* cache, int64_t layer);  // [B,T,C]

  Conv1D c_attn{nullptr};  // [C, 3C]: q, k, v side by side
  Conv1D c_proj{nullptr};  // [C, C]

 private:
  int64_t n_heads_, head_dim_;
};
TORCH_MODULE(GPT2Attention);

class GPT2MLPImpl : public torch::nn::Module {
 public:
  explicit GPT2MLPImpl(const ModelConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, C] -> [B, T, C]

  Conv1D c_fc{nullptr}, c_proj{nullptr};

 private:
  std::string activation_;
};
TORCH_MODULE(GPT2MLP);

class GPT2BlockImpl : public torch::nn::Module {
 public:
  explicit GPT2BlockImpl(const ModelConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x, AttentionCache* cache, int64_t layer);  // [B,T,C]

  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  GPT2Attention attn{nullptr};
  GPT2MLP mlp{nullptr};
};
TORCH_MODULE(GPT2Block);

class GPT2ModelImpl : public torch::nn::Module {
 public:
  explicit GPT2ModelImpl(const ModelConfig& cfg);  // cfg resolved
  // input_ids [B, T] -> final-normed hidden states [B, T, C]; positions are the cache's
  // (cache->positions), 0.. without one, and must stay below max_seq_len (wpe has no rows
  // beyond it).
  torch::Tensor forward(const torch::Tensor& input_ids, AttentionCache* cache);
  // The same from token embeddings [B, T, C] (wte's output, or prompt-tuning vectors before it):
  // position embeddings are added to every row.
  torch::Tensor forward_embeds(const torch::Tensor& embeds, AttentionCache* cache);
  const torch::Tensor& token_embedding() const { return wte->weight; }  // [V, C]

  // The pieces of forward() without a cache, for pipeline stages: embed (positions 0..T-1),
  // the blocks [begin, end), and `ln_f` after the last.
  torch::Tensor embed(const torch::Tensor& input_ids);                    // [B, T] -> [B, T, C]
  torch::Tensor run_layers(torch::Tensor x, int64_t begin, int64_t end);  // [B, T, C] -> [B, T, C]

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  LayerNorm ln_f{nullptr};
  // A generic extension point around each block: called with the block's index, its input
  // [B, T, C] and a function that runs the block; returns the block's output [B, T, C]
  // (parallel/fsdp.h gathers the block's sharded parameters around it). Null: the block runs.
  std::function<torch::Tensor(int64_t, const torch::Tensor&,
                              const std::function<torch::Tensor(const torch::Tensor&)>&)>
      layer_hook;

 private:
  // embeds [B, T, C] + the position embeddings of the cache's positions (0.. without one).
  torch::Tensor add_positions(const torch::Tensor& embeds, AttentionCache* cache);
  // Blocks [begin, end) over x [B, T, C].
  torch::Tensor run_range(torch::Tensor x, int64_t begin, int64_t end, AttentionCache* cache);
};
TORCH_MODULE(GPT2Model);

// The CausalLM parameter name that a tensor of a GPT-2 checkpoint fills, or "" for a tensor to
// skip. Hub checkpoints (GPT2Model's state_dict, e.g. openai-community/gpt2) name tensors
// without the "transformer." prefix ("h.0.attn.c_attn.weight", "wte.weight") and carry the
// attention-mask buffers "h.N.attn.bias" and "h.N.attn.masked_bias": the prefix is added and
// exactly those buffers (prefixed or not) are skipped. Any other name is returned unchanged,
// so strict loading still rejects it.
std::string gpt2_parameter_name(const std::string& tensor_name);

}  // namespace reef
