// CausalLM: a decoder-only language model for every supported architecture (ModelConfig.arch =
// HF model_type: llama, mistral, qwen2, qwen3, gpt2), plus config resolution and size/FLOP
// accounting. Parameter names are exactly Hugging Face's state_dict keys, and a checkpoint is
// named_parameters() alone: no buffers are registered (RoPE tables are recomputed, GPT-2's
// causal-mask buffers do not exist), and with tied embeddings lm_head is not registered at all.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "reef/config/config.h"
#include "reef/models/gpt2.h"
#include "reef/models/llama.h"
#include "reef/nn/kv_cache.h"

namespace reef {

// The architectures CausalLM builds, in the order error messages list them.
const std::vector<std::string>& supported_archs();  // llama, mistral, qwen2, qwen3, gpt2
// "llama, mistral, qwen2, qwen3, gpt2"
std::string supported_archs_list();
// True for the RoPE + RMSNorm + gated-MLP family (everything but gpt2).
bool is_llama_family(const std::string& arch);

// Fills derived fields: n_kv_heads 0 -> n_heads; head_dim 0 -> hidden/n_heads; intermediate_size
// 0 -> 4*hidden (gpt2) or 8/3*hidden rounded up to a multiple of 64; activation "auto"/"" ->
// silu (llama family) or gelu_new (gpt2); rope_scaling ""/"default" -> "none". Applies what each
// HF architecture hard-codes: qwen2 always has q/k/v biases (attention_bias -> true), qwen3
// always has q/k norms (qk_norm -> true), gpt2 has biases everywhere. Throws reef::Error(kUsage)
// for an unsupported arch or a combination the architecture cannot express (e.g. mistral with
// attention_bias, gpt2 with GQA or RoPE scaling). vocab_size is left as is (0 = not yet known).
ModelConfig resolve_model_config(const ModelConfig& cfg);

class CausalLMImpl : public torch::nn::Module {
 public:
  // Builds the model for `cfg` (resolved here; vocab_size must be > 0) with weights initialised
  // from the current torch global RNG as reset_parameters() does (the caller seeds).
  explicit CausalLMImpl(const ModelConfig& cfg);

  // input_ids [B, T] int64 -> logits [B, T, V]. With a cache, positions are the cache's and it
  // stores the T new tokens: a KVCache continues at cache->length() and grows by T; a
  // SlotKVCache (nn/slot_kv_cache.h) places each row at its own slot and length.
  torch::Tensor forward(const torch::Tensor& input_ids, AttentionCache* cache = nullptr);
  // input_ids [B, T] -> final hidden states [B, T, C] (before the LM head).
  torch::Tensor hidden_states(const torch::Tensor& input_ids, AttentionCache* cache = nullptr);
  // The LM head matrix [V, C]: lm_head.weight, or the token embedding when tied.
  torch::Tensor lm_head_weight() const;

  const ModelConfig& config() const { return cfg_; }  // resolved

  // Re-initialises as the families do: normal(0, init_std) for linear/Conv1D and embedding
  // weights (wpe included), zeros for biases, ones for norm weights, and normal(0,
  // init_std/sqrt(2*n_layers)) for residual output projections (o_proj, down_proj, gpt2's
  // attn.c_proj and mlp.c_proj).
  void reset_parameters();

  // Exactly one of these is set, depending on the arch.
  LlamaModel model{nullptr};           // "model": llama, mistral, qwen2, qwen3
  GPT2Model transformer{nullptr};      // "transformer": gpt2
  torch::nn::Linear lm_head{nullptr};  // "lm_head": only when embeddings are not tied

 private:
  ModelConfig cfg_;
};
TORCH_MODULE(CausalLM);

// Parameter count from the (resolved here) config without building the model; equals the sum
// of numel over CausalLM's named_parameters(). include_embeddings=false leaves out the token
// embedding and gpt2's position embedding (an untied lm_head is still counted, as it is a
// matmul every token pays for).
int64_t count_parameters(const ModelConfig& cfg, bool include_embeddings = true);

// Training FLOPs per token, forward + backward, PaLM-style (Chowdhery et al. 2022, app. B):
// 6 * N_matmul + 12 * n_layers * n_heads * head_dim * seq_len, where N_matmul counts the weights
// of every matrix multiply a token goes through: q/k/v/o (or c_attn/c_proj), the MLP
// projections and the LM head (V*C, counted even when tied). Embedding lookups, norms, biases,
// RoPE and softmax are not counted. The second term is the QK^T and attention-times-V matmuls
// over a full seq_len context (no halving for causality, as PaLM and Megatron count it).
double train_flops_per_token(const ModelConfig& cfg, int64_t seq_len);

}  // namespace reef
