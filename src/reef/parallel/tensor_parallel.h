// Tensor parallelism (Megatron-LM, Shoeybi et al. 2019), applied to a built CausalLM from
// outside by reading its family's plan (ModelFamily::tp_plan, models/<family>/: which modules
// are column-, row- or vocab-parallel, take a gathered input, or hold partial gradients; as
// torchtitan's parallelize_llama): each rank of a tp group keeps a slice of every large matrix,
// taken from the full initialised (or loaded) weights, so a tp run starts from exactly the
// model a single process would. The llama family's plan, per decoder layer:
//   attention: q/k/v column-parallel (whole heads per rank; GQA: whole kv heads per rank),
//              o_proj row-parallel, its partial products all-reduced before the bias;
//   MLP:       gate/up column-parallel, down row-parallel (the same all-reduce);
//   vocab:     the token embedding and the LM head (tied or not) hold contiguous vocab slices;
//              the lookup zeroes ids outside the slice and all-reduces; the loss is a
//              vocab-parallel cross-entropy that never gathers the full logits.
// Norms and row-parallel biases are replicated (their gradients come out equal on every rank);
// Qwen3's per-head q/k norms see only local heads, so their gradients are all-reduced.
// Sequence parallelism (Korthikanti et al. 2022, `parallel.sequence_parallel`): outside the
// attention and MLP (norms, residuals, the embedding's output, the final norm) each rank holds
// 1/tp of the sequence, [B, T/tp, C]. Entering a column-parallel region all-gathers the
// sequence (its backward reduce-scatters); leaving a row-parallel one reduce-scatters the
// partial sums (its backward all-gathers): the same bytes as the two all-reduces, while those
// activations take 1/tp of the memory. The replicated parameters then see one slice of the
// tokens each, so their gradients are summed over the group once per step.
// The f / g conjugate operators are autograd functions over the tp ProcessGroup's collectives;
// the model code only offers generic hooks (nn/, models/) that this file sets.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reef/models/causal_lm.h"
#include "reef/parallel/mesh.h"
#include "reef/parallel/process_group.h"

namespace reef {

// This rank's data-parallel and tensor-parallel groups (mesh.h's layout). A collective over
// the world: every rank calls it. A group covering the world is `world` itself; a one-rank
// group is null.
struct MeshGroups {
  std::shared_ptr<ProcessGroup> dp, tp;
};
MeshGroups make_mesh_groups(const Mesh& mesh, const std::shared_ptr<ProcessGroup>& world);
// Only the tensor-parallel group (null when mesh.tp == 1); its member ranks call it.
std::shared_ptr<ProcessGroup> make_tp_group(const Mesh& mesh,
                                            const std::shared_ptr<ProcessGroup>& world);

// Usage errors naming the keys when the (resolved) model cannot be split over `tp` ranks:
// an arch whose family has no plan for it (experts, gpt2), or n_heads, n_kv_heads,
// intermediate_size or vocab_size not divisible by tp (the vocab is not padded: the checkpoint
// keeps its shape).
void check_tensor_parallel(const ModelConfig& cfg, int64_t tp);

// f: identity forward, all-reduce of the gradient backward (where a replicated activation
// enters a column-parallel layer).
torch::Tensor copy_to_tp(const torch::Tensor& x, ProcessGroup& tp);
// g: all-reduce forward, identity backward (the partial products of a row-parallel layer).
torch::Tensor reduce_from_tp(const torch::Tensor& x, ProcessGroup& tp);

// Sequence parallelism, along dim 1 (the sequence of [B, T, ...]), in rank order:
// all-gather forward, reduce-scatter of the gradient backward: [B, T/tp, ...] -> [B, T, ...].
torch::Tensor gather_sequence(const torch::Tensor& x, ProcessGroup& tp);
// reduce-scatter forward (each rank keeps the sum of its slice), all-gather of the gradient
// backward: [B, T, ...] -> [B, T/tp, ...]. T not divisible by tp is an error.
torch::Tensor reduce_scatter_sequence(const torch::Tensor& x, ProcessGroup& tp);

// ids [B, T] (full-vocab ids) -> [B, T, C] from weight [V/tp, C] holding rows
// [vocab_start, vocab_start + V/tp): ids outside give zeros, then the sum over ranks
// (sequence_parallel: reduce-scattered, [B, T/tp, C]).
torch::Tensor vocab_parallel_embedding(const torch::Tensor& ids, const torch::Tensor& weight,
                                       int64_t vocab_start, ProcessGroup& tp,
                                       bool sequence_parallel = false);

// Per-token cross-entropy (float32) from this rank's logits slice [N, V/tp] (columns
// [vocab_start, vocab_start + V/tp)) against targets [N] (full-vocab ids; negative = ignored,
// loss 0 and no gradient). -> [N]. Exchanges only [N]-sized vectors, never the logits.
torch::Tensor vocab_parallel_cross_entropy(const torch::Tensor& logits,
                                           const torch::Tensor& targets, int64_t vocab_start,
                                           ProcessGroup& tp);

// The sum of the squares of scalar norms (e.g. per-parameter gradient norms), read with one
// device sync.
double sum_of_squares(const std::vector<torch::Tensor>& norms);

class TensorParallel {
 public:
  // Slices `model` (built, same weights on every rank of `tp`) in place to this rank's share
  // and installs the hooks (sequence_parallel: the sequence-parallel ones, and the model's
  // hidden states between layers hold 1/tp of the sequence). Checks check_tensor_parallel;
  // refuses LoRA layers.
  TensorParallel(CausalLM model, std::shared_ptr<ProcessGroup> tp, bool sequence_parallel = false);

  ProcessGroup& group() { return *tp_; }
  bool sequence_parallel() const { return sequence_parallel_; }
  // The dimension a parameter (HF name) is split along, or -1 when replicated.
  int64_t shard_dim(const std::string& name) const;
  // This rank's slice of a full tensor of parameter `name` (replicated: the tensor itself).
  torch::Tensor shard(const std::string& name, const torch::Tensor& full) const;
  // The full tensor of parameter `name` from every rank's slice: a collective over the group.
  torch::Tensor gather(const std::string& name, const torch::Tensor& local);

  // A new, unsharded CausalLM holding the gathered weights (for a checkpoint). Collective.
  CausalLM gather_model();
  // Copies this rank's slices of `full`'s weights into the sharded model.
  void load_full_model(CausalLM& full);
  // Optimizer state "<param>.exp_avg" / ".exp_avg_sq" of the sharded parameters <-> full.
  std::vector<std::pair<std::string, torch::Tensor>> gather_state(
      const std::vector<std::pair<std::string, torch::Tensor>>& local);
  std::map<std::string, torch::Tensor> shard_state(
      const std::map<std::string, torch::Tensor>& full) const;

  // Per-token losses [B, T] from the sharded model's logits [B, T, V/tp] (its forward()).
  torch::Tensor token_losses(const torch::Tensor& logits, const torch::Tensor& targets);
  // Mean over the tokens whose target is not ignored (causal_lm_loss's value).
  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets);
  // Completes the gradients each rank holds only a part of: Qwen3's per-head q/k norms (this
  // rank's heads) and, with sequence parallelism, every replicated parameter (this rank's
  // tokens). One all-reduce over the group; call it once per step, after the backward passes
  // (gradient accumulation included) and before clipping. Collective.
  void reduce_partial_gradients();
  // The global L2 norm of the gradients of the whole (unsharded) model, clipped to max_norm
  // (0: no clipping) as Optimizer::clip_grad_norm does. Collective.
  double clip_grad_norm(double max_norm);

 private:
  const std::string& owner_param(const std::string& state_name) const;

  CausalLM model_;
  std::shared_ptr<ProcessGroup> tp_;
  std::map<std::string, int64_t> dims_;  // every parameter: split dim or -1
  std::vector<torch::Tensor>
      partial_;  // parameters whose gradients are partial sums over the group
  int64_t vocab_start_ = 0;
  bool sequence_parallel_ = false;
};

}  // namespace reef
