// Optimizer and learning-rate schedule: libtorch AdamW with decoupled weight decay in two
// parameter groups (decay / no decay), warmup then cosine, linear or constant decay to min_lr,
// global-norm gradient clipping, and the optimizer state as named tensors for checkpoints.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reef/config/config.h"

namespace reef {

using NamedParams = std::vector<std::pair<std::string, torch::Tensor>>;

// True when weight decay applies: matrices other than embeddings (unless decay_all).
bool param_gets_weight_decay(const std::string& name, const torch::Tensor& p, bool decay_all);

// Learning rate for the 0-based optimizer step `step` of `max_steps`.
double lr_at_step(const OptimConfig& o, int64_t step, int64_t max_steps);

class Optimizer {
 public:
  Optimizer(const NamedParams& params, const OptimConfig& cfg);
  void set_lr(double lr);
  void step() { opt_->step(); }
  void zero_grad() { opt_->zero_grad(true); }
  // Clips the global L2 norm of all gradients to max_norm (0: no clipping); returns the norm
  // before clipping.
  double clip_grad_norm(double max_norm);
  // Adam moments as named tensors "<param>.exp_avg" / "<param>.exp_avg_sq" and the step count.
  NamedParams state_tensors(int64_t* step) const;
  void load_state_tensors(const std::map<std::string, torch::Tensor>& t, int64_t step);
  int64_t num_decay_params() const { return n_decay_; }
  int64_t num_no_decay_params() const { return n_no_decay_; }

 private:
  NamedParams params_;
  std::unique_ptr<torch::optim::AdamW> opt_;
  int64_t n_decay_ = 0, n_no_decay_ = 0;
};

}  // namespace reef
