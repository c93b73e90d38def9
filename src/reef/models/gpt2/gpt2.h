// GPT-2: learned token and position embeddings (wte, wpe), pre-LayerNorm blocks with a fused
// qkv Conv1D attention and a Conv1D MLP, final LayerNorm. Registered as CausalLM's "transformer"
// child so parameter names are HF's ("transformer.h.0.attn.c_attn.weight"). HF's non-persistent
// attn.bias mask buffers are not reproduced: causality comes from the attention kernel.
#pragma once

#include <torch/torch.h>

#include "reef/config/config.h"
#include "reef/models/body.h"
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

class GPT2BlockImpl : public DecoderLayerImpl {
 public:
  explicit GPT2BlockImpl(const ModelConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx, int64_t layer) override;

  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  GPT2Attention attn{nullptr};
  GPT2MLP mlp{nullptr};
};
TORCH_MODULE(GPT2Block);

// Children: wte, wpe, h, ln_f.
class GPT2ModelImpl : public DecoderBodyImpl {
 public:
  explicit GPT2ModelImpl(const ModelConfig& cfg);  // cfg resolved
  // Adds the position embeddings of the positions to the token embeddings [B, T, C] (prefix
  // vectors included); positions must stay below max_seq_len (wpe has no rows beyond it).
  torch::Tensor prepare(const torch::Tensor& embeds, const Positions& p) override;
  LayerContext context(const Positions& p, torch::ScalarType) override {
    LayerContext ctx;
    ctx.positions = p;
    return ctx;
  }
  torch::Tensor final_norm(const torch::Tensor& x) override { return ln_f(x); }
  std::vector<torch::Tensor> embedding_weights() override;

  Embedding wpe{nullptr};
  LayerNorm ln_f{nullptr};

 protected:
  void drop_positions() override;
  void drop_final_norm() override;
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
