// CausalLM: a decoder-only language model for every supported architecture (ModelConfig.arch =
// HF model_type: llama, mistral, mixtral, qwen2, qwen3, gemma, gpt2; config resolution is the
// families', models/family.h), the training loss (with Mixtral's load-balancing term) and size/FLOP
// accounting. Parameter names are exactly Hugging Face's state_dict keys, and a checkpoint is
// named_parameters() alone: no buffers are registered (RoPE tables are recomputed, GPT-2's
// causal-mask buffers do not exist), with tied embeddings lm_head is not registered at all, and
// the `logits` head module holds no parameters of its own.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "reef/config/config.h"
#include "reef/models/body.h"
#include "reef/models/family.h"
#include "reef/nn/kv_cache.h"
#include "reef/nn/linear.h"

namespace reef {

// supported_archs(), is_llama_family() and resolve_model_config() come from the family
// registry (models/family.h); included here for CausalLM's users.

class CausalLMImpl : public torch::nn::Module {
 public:
  // Builds the model for `cfg` (resolved here; vocab_size must be > 0) with weights initialised
  // from the current torch global RNG as reset_parameters() does (the caller seeds).
  explicit CausalLMImpl(const ModelConfig& cfg);

  // input_ids [B, T] int64 -> logits [B, T, V]. With a cache, positions are the cache's and it
  // stores the T new tokens: a KVCache continues at cache->length() and grows by T; a
  // SlotKVCache (nn/slot_kv_cache.h) places each row at its own slot and length.
  torch::Tensor forward(const torch::Tensor& input_ids, AttentionCache* cache = nullptr);
  // The training forward: logits [B, T, V] as forward(), plus, when uses_aux_loss(), the
  // load-balancing loss over every MoE layer's router logits (float32 scalar, before
  // router_aux_loss_coef; transformers' aux_loss). aux_loss is undefined otherwise.
  struct TrainOutput {
    torch::Tensor logits;
    torch::Tensor aux_loss;
  };
  // With `cache`, positions and attention come from it as in forward() (a PackedSequences
  // layout, nn/packing.h, keeps packed samples apart). With `prefix_embeds` [P, C] (prompt
  // tuning's virtual tokens) those vectors are put before every row's token embeddings, as
  // peft's prompt learning does: logits are then [B, P + T, V]. With `head_positions` [B, T]
  // bool, only those positions (of the T token positions, in row-major order) go through the LM
  // head: logits are [N, V] for the N marked ones, and the [B, T, V] logits of the rest are
  // never made (a loss that counts a fraction of the positions, as SFT and DPO do).
  TrainOutput forward_train(const torch::Tensor& input_ids, AttentionCache* cache = nullptr,
                            const torch::Tensor& prefix_embeds = {},
                            const torch::Tensor& head_positions = {});
  // The token embedding lookup (HF's get_input_embeddings()): input_ids [B, T] -> [B, T, C].
  torch::Tensor embed_tokens(const torch::Tensor& input_ids);
  // True for a MoE model configured with output_router_logits (HF: then the loss includes
  // router_aux_loss_coef * aux_loss).
  bool uses_aux_loss() const;
  // input_ids [B, T] -> final hidden states [B, T, C] (before the LM head).
  torch::Tensor hidden_states(const torch::Tensor& input_ids, AttentionCache* cache = nullptr);
  // The token embedding's parameter name ("model.embed_tokens.weight", "transformer.wte.weight").
  std::string token_embedding_name() const;
  // The LM head matrix [V, C]: lm_head.weight, or the token embedding when tied; a sequence
  // classifier's score.weight [num_labels, C].
  torch::Tensor lm_head_weight() const;
  // The output layer's module name: "lm_head", or "score" for a sequence classifier.
  std::string head_name() const;
  // final hidden states [B, T, C] (after the final norm) -> logits [B, T, V] (through the
  // `logits` module, whose input hook a parallel plan may set).
  torch::Tensor lm_head_logits(const torch::Tensor& h);

  const ModelConfig& config() const { return cfg_; }  // resolved

  // Pipeline pieces (parallel/pipeline.h runs them as stages on different ranks): embed, then
  // run_layers over consecutive ranges [0, n_layers), then head, equals forward() without a
  // cache. seq_len is the whole sequence's length (RoPE positions 0..seq_len-1; h may hold a
  // slice of it under sequence parallelism). A MoE model's router logits are not collected.
  torch::Tensor embed(const torch::Tensor& input_ids);  // [B, T] -> [B, T, C]
  torch::Tensor run_layers(const torch::Tensor& h, int64_t begin, int64_t end,
                           int64_t seq_len);  // [B, T, C] -> [B, T, C]
  torch::Tensor head(
      const torch::Tensor& h);  // final norm + LM head: [B, T, C] -> logits [B, T, V]
  // Releases every module a pipeline stage does not run: decoder layers outside [begin, end)
  // become parameterless placeholders (the kept ones keep their names, e.g.
  // model.layers.3.*), the embeddings go unless keep_embeddings, the final norm and LM head
  // unless keep_head. A tied token embedding also stays with keep_head: it is the head's matrix.
  // Only embed/run_layers/head over what is kept work afterwards.
  void keep_only(int64_t begin, int64_t end, bool keep_embeddings, bool keep_head);

  // Re-initialises as the families do: normal(0, init_std) for linear/Conv1D and embedding
  // weights (wpe and mixtral's router included), zeros for biases, norms as each resets itself
  // (ones, zeros for gemma's (1 + weight) norms), and normal(0, init_std/sqrt(2*n_layers)) for
  // residual output projections (o_proj, down_proj, mixtral's expert w2, gpt2's attn.c_proj and
  // mlp.c_proj).
  void reset_parameters();

  // The decoder body ("model", or "transformer" for gpt2: models/body.h).
  DecoderBodyImpl& body() { return *body_; }
  const DecoderBodyImpl& body() const { return *body_; }
  // The output layer: "lm_head" when embeddings are not tied; for a sequence classifier
  // (config num_labels > 0, e.g. a reward model) "score", [num_labels, C], and the logits are
  // per-position class scores [B, T, num_labels] (the row's output is at its last non-pad token).
  Linear lm_head{nullptr};
  LogitsHead logits{nullptr};  // "logits": the head's matmul, no parameters of its own

 private:
  enum class Until { kLayers, kNorm, kLogits };
  // The one forward path every entry point takes: from token ids (embedding, prefix vectors,
  // the body's preparation) or hidden states, through layers [begin, end), until the layers'
  // output, the final norm or the logits.
  torch::Tensor run(const torch::Tensor& x, const Positions& p, int64_t begin, int64_t end,
                    Until until, const torch::Tensor& prefix_embeds = {},
                    std::vector<torch::Tensor>* router_logits = nullptr);
  Positions positions(const torch::Tensor& input_ids, AttentionCache* cache,
                      int64_t prefix = 0) const;

  ModelConfig cfg_;
  std::shared_ptr<DecoderBodyImpl> body_;
};
TORCH_MODULE(CausalLM);

// The objective transformers' *ForCausalLM returns with labels: mean next-token cross-entropy
// of logits [B, T, V] (computed in float32) against targets [B, T], plus
// router_aux_loss_coef * aux_loss when aux_loss is defined (forward_train's). Float32 scalar.
torch::Tensor causal_lm_loss(const ModelConfig& cfg, const torch::Tensor& logits,
                             const torch::Tensor& targets, const torch::Tensor& aux_loss = {});

// Targets equal to this take no part in the loss (PyTorch's and transformers' ignore_index).
inline constexpr int64_t kIgnoreTarget = -100;

// The sum of next-token cross-entropy (computed in float32) of logits [B, T, V] over the targets
// [B, T] that are not kIgnoreTarget: a float32 scalar. Dividing by the number of counted targets
// of a whole optimizer step (all micro-batches, all ranks) gives the loss transformers' Trainer
// uses with num_items_in_batch, so gradient accumulation and packing never reweight tokens.
torch::Tensor causal_lm_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets);

// Parameter count from the (resolved here) config without building the model; equals the sum
// of numel over CausalLM's named_parameters() (for mixtral: every expert and the routers).
// include_embeddings=false leaves out the token embedding and gpt2's position embedding (an
// untied lm_head is still counted, as it is a matmul every token pays for).
int64_t count_parameters(const ModelConfig& cfg, bool include_embeddings = true);

// Training FLOPs per token, forward + backward, PaLM-style (Chowdhery et al. 2022, app. B):
// 6 * N_matmul + 12 * n_layers * n_heads * head_dim * seq_len, where N_matmul counts the weights
// of every matrix multiply a token goes through: q/k/v/o (or c_attn/c_proj), the MLP
// projections and the LM head (V*C, counted even when tied). For mixtral a token goes through
// its router (C*E) and only its n_experts_per_tok active experts, so N_matmul counts those,
// not all n_experts (MFU of a sparse model is about the work done, not the parameters held).
// Embedding lookups, norms, biases, RoPE and softmax are not counted. The second term is the
// QK^T and attention-times-V matmuls over a full seq_len context (no halving for causality, as
// PaLM and Megatron count it).
double train_flops_per_token(const ModelConfig& cfg, int64_t seq_len);

}  // namespace reef
