// ZeRO-3 / FSDP (Rajbhandari et al. 2020; PyTorch FSDP, Zhao et al. 2023) applied to a built
// CausalLM from outside: parameters, gradients and (with train/optim.h) the AdamW state are
// sharded over the data-parallel ranks. The model is cut into units: one per decoder layer, and
// a root unit holding everything else (embeddings, final norm, LM head). Each unit's parameters
// are one flat vector (weight-decayed parameters first), padded to a multiple of dp and cut into
// dp equal slices; a rank keeps only its slice (`local`, the master copy AdamW updates).
//
// The module's parameters stay the same leaf tensors (names, optimizer-free code and hooks keep
// working) but become views of the unit's flat buffer `full`, whose storage is allocated and
// all-gathered only while the unit runs and freed otherwise (FSDP1's storage resize: autograd's
// saved views share that storage, so a re-gather before backward refills what they see).
//   forward:  a layer's unit is gathered by the model's layer hook, run, and released; the root
//             unit is gathered before the forward (gather_root) and kept until after backward.
//             While layer i runs, layer i + 1's all-gather is in flight (prefetch).
//   backward: a tensor hook on the layer's output re-gathers the unit before its backward (and
//             starts layer i - 1's all-gather); once autograd has accumulated every parameter's
//             gradient (post-accumulate-grad hooks), the full gradients are reduce-scattered
//             (averaged over dp) into the unit's gradient shard while the next layer's backward
//             runs, and the full parameters are freed: at most two units are gathered and two
//             full gradients alive at a time. The root unit (and, for MoE
//             models whose experts may go unused on some rank, every unit) is reduce-scattered by
//             after_backward(), in unit order, so every rank issues the same collectives.
// Gradient accumulation: every micro-batch's backward reduce-scatters and adds into the shards.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "reef/models/causal_lm.h"
#include "reef/parallel/process_group.h"

namespace reef {

class Fsdp {
 public:
  struct Param {
    std::string name;      // HF name
    torch::Tensor tensor;  // the module's parameter (a view of the unit's `full` buffer)
    int64_t offset = 0;    // first element in the unit's flat vector
    bool decay = false;
  };
  struct Unit {
    std::string name;                               // "model.layers.3", "root"
    std::vector<Param> params;                      // weight-decayed ones first
    int64_t numel = 0, decay_numel = 0, shard = 0;  // elements; decayed ones; slice per rank
    torch::Tensor full;   // [shard * dp] the gathered flat parameters; storage freed at rest
    torch::Tensor local;  // [shard] this rank's slice: elements [shard * rank, shard * (rank + 1))
    torch::Tensor grad;   // [shard] gradient slice accumulated over the step (undefined: none)
    // AdamW's parameters: views of `local` over the decayed part [0, k) and the rest [k, shard)
    // (undefined when empty), so each keeps its group's weight decay.
    torch::Tensor decay_leaf, no_decay_leaf;
    bool gathered = false, reduced = true;
    size_t pending = 0;  // parameters whose gradient this backward has not produced yet
    std::unique_ptr<ProcessGroup::Work> gathering;  // a prefetch into `full` in flight
    // A reduce-scatter in flight: its input (the full flat gradient) and output (this slice).
    std::unique_ptr<ProcessGroup::Work> reducing;
    torch::Tensor reduce_in, reduce_out;
  };
  // A piece of this rank's slice: elements [begin, begin + length) of parameter `param`, at
  // `at` in the unit's `local`.
  struct LocalRange {
    const Param* param;
    int64_t begin = 0, length = 0, at = 0;
  };

  // Shards `model` (built, the same weights on every rank of `dp`) in place and installs the
  // hooks. `decays(name, param)`: whether AdamW's weight decay applies. llama family and gpt2.
  Fsdp(CausalLM model, std::shared_ptr<ProcessGroup> dp,
       const std::function<bool(const std::string&, const torch::Tensor&)>& decays);
  ~Fsdp();  // removes the hooks
  Fsdp(const Fsdp&) = delete;
  Fsdp& operator=(const Fsdp&) = delete;

  ProcessGroup& group() { return *pg_; }
  std::vector<Unit>& units() { return units_; }
  const std::vector<Unit>& units() const { return units_; }
  std::vector<LocalRange> local_ranges(const Unit& u) const;

  // Before each forward (training or not): gathers the root unit (if released).
  void gather_root();
  // After each micro-batch's backward: reduce-scatters the units backward left (the root at
  // least) and releases every unit.
  void after_backward();
  // Every unit gathered (e.g. to save or load whole weights) / released.
  void gather_all();
  void release_all();
  // After whole weights were copied into the gathered model (a checkpoint load): takes this
  // rank's slices from them and releases.
  void reshard_from_params();

  void zero_grad();  // drops the gradient slices
  // Points the AdamW leaves' .grad at the gradient slices (zeros where none).
  void prepare_step();
  // The global L2 norm of the (averaged) gradients from every rank's slices, clipped to
  // max_norm (0: no clipping) as Optimizer::clip_grad_norm does. Collective.
  double clip_grad_norm(double max_norm);

  // Parameter elements this rank holds at rest (its slices), and the model's total.
  int64_t local_elements() const;
  int64_t total_elements() const;

  // Runs decoder layer `layer` (its unit) through `run` on x: gathers its parameters first
  // (prefetching the next layer's), releases them after, and gathers them again right before
  // its backward. The wrapper FSDP puts in each layer's place calls it.
  torch::Tensor around_layer(int64_t layer, const torch::Tensor& x,
                             const std::function<torch::Tensor(const torch::Tensor&)>& run);

  // Called from the post-accumulate-grad hook of parameter `index` of unit `unit`.
  void on_grad_ready(size_t unit);

 private:
  void gather(Unit& u);
  void release(Unit& u);
  void prefetch(Unit& u);       // starts gathering u (gather() waits for it)
  void reduce_grads(Unit& u);   // starts the reduce-scatter into u.grad, drops full grads, releases
  void finish_reduce(Unit& u);  // waits for u's reduce-scatter and adds it into u.grad

  CausalLM model_;
  std::shared_ptr<ProcessGroup> pg_;
  std::vector<Unit> units_;    // one per decoder layer, then the root
  bool defer_reduce_ = false;  // MoE: every reduce-scatter in after_backward()
};

}  // namespace reef
