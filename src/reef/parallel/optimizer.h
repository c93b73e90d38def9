// The optimizer of every parallel layout: libtorch AdamW with decoupled weight decay in two
// parameter groups (decay / no decay), warmup then cosine, linear or constant decay to min_lr,
// global-norm gradient clipping, and the optimizer state as named tensors for checkpoints. It
// lives in parallel/ because its state is sharded with the layout (the schedule is train/'s).
// With a ZeRO-1 process group the AdamW state is sharded over the ranks (parallel/zero.h); with
// FSDP (ZeRO-3, parallel/fsdp.h) AdamW steps each rank's parameter slices only. The
// checkpointed state is the same full, named state in every case.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reef/config/config.h"
#include "reef/parallel/fsdp.h"
#include "reef/parallel/zero.h"

namespace reef {

using NamedParams = std::vector<std::pair<std::string, torch::Tensor>>;

// A flat run of a named tensor that this rank holds: elements [begin, begin + length) of the
// row-major flattening of tensor `name`, whose whole shape is `shape`. The optimizer's moments
// (ZeRO / FSDP slices, or whole) and FSDP's parameter slices; `data` ([length]) is a view of the
// rank's storage, so loading a checkpoint writes into it.
struct FlatPiece {
  std::string name;
  std::vector<int64_t> shape;
  int64_t begin = 0, length = 0;
  torch::Tensor data;
  bool whole() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return begin == 0 && length == n;
  }
};

// True when weight decay applies: matrices other than embeddings (unless decay_all).
bool param_gets_weight_decay(const std::string& name, const torch::Tensor& p, bool decay_all);

class Optimizer {
 public:
  // `zero_group` (several ranks): ZeRO-1, AdamW state sharded over its ranks; grads must then
  // be averaged over the ranks before step().
  Optimizer(const NamedParams& params, const OptimConfig& cfg,
            std::shared_ptr<ProcessGroup> zero_group = nullptr);
  // FSDP (ZeRO-3): AdamW over `fsdp`'s parameter slices (weight decay per group as above);
  // step() takes the gradient slices its reduce-scatters produced.
  Optimizer(Fsdp& fsdp, const OptimConfig& cfg);
  void set_lr(double lr);
  void step();
  void zero_grad() {  // set_to_none, as torch's zero_grad(true)
    if (fsdp_) return fsdp_->zero_grad();
    for (auto& [name, p] : params_)
      if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
  }
  // Clips the global L2 norm of all gradients to max_norm (0: no clipping); returns the norm
  // before clipping.
  double clip_grad_norm(double max_norm);
  // Adam moments as named tensors "<param>.exp_avg" / "<param>.exp_avg_sq" and the step count.
  // Sharded (ZeRO): the state of the last gather_state().
  NamedParams state_tensors(int64_t* step) const;
  // Sharded: gathers the full state from every rank for state_tensors(); a collective that every
  // rank calls before a checkpoint is written. Unsharded: nothing to do.
  void gather_state();
  void release_gathered_state() { gathered_.clear(); }  // back to 1/dp of the state in memory
  bool sharded() const { return zero_ != nullptr || fsdp_ != nullptr; }
  void load_state_tensors(const std::map<std::string, torch::Tensor>& t, int64_t step);
  // For distributed checkpoints, without communication: the state this rank holds, as flat
  // ranges [begin, begin + length) of the named moments ("<param>.exp_avg", ...; data
  // [length]). ZeRO: this rank's slices; unsharded: every moment whole.
  std::vector<FlatPiece> local_state(int64_t* step) const;
  // Reads what this rank holds through `read` (ZeRO: its slices only); step 0: no state.
  void load_local_state(const ZeroAdamW::FlatReader& read, int64_t step);
  int64_t num_decay_params() const { return n_decay_; }
  int64_t num_no_decay_params() const { return n_no_decay_; }

 private:
  // FSDP: a unit's moment `which` (0: exp_avg, 1: exp_avg_sq) over its whole slice [shard];
  // undefined before the first step.
  torch::Tensor fsdp_moment(const Fsdp::Unit& u, int which) const;
  int64_t fsdp_step(const Fsdp::Unit& u) const;  // AdamW's step count (0: no state yet)
  void fsdp_set_moments(Fsdp::Unit& u, const torch::Tensor& avg, const torch::Tensor& avg_sq,
                        int64_t step);

  NamedParams params_;
  Fsdp* fsdp_ = nullptr;
  std::unique_ptr<torch::optim::AdamW> opt_;
  std::unique_ptr<ZeroAdamW> zero_;
  NamedParams gathered_;
  int64_t gathered_step_ = 0;
  int64_t n_decay_ = 0, n_no_decay_ = 0;
};

}  // namespace reef
