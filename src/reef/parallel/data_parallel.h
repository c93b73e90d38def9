// Data parallelism applied to a built model from outside (the model code knows nothing of it):
// identical initial weights on every rank (broadcast from rank 0), and gradient all-reduce in
// buckets launched from autograd's post-accumulate-grad hooks while the backward pass is still
// running, so communication overlaps computation. With gradient accumulation only the last
// micro-batch's backward synchronises (as DDP's no_sync for the others).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "reef/parallel/process_group.h"

namespace reef {

// Copies rank 0's parameters and buffers into every rank's module, in place.
void broadcast_module_from_rank0(torch::nn::Module& module, ProcessGroup& pg);

class GradientSync {
 public:
  // `params`: the trainable parameters (registration order); buckets of about bucket_mb MB.
  GradientSync(std::vector<torch::Tensor> params, std::shared_ptr<ProcessGroup> pg,
               double bucket_mb);
  ~GradientSync();  // removes the hooks
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Whether the next backward passes launch the all-reduce (the step's last micro-batch) or
  // only accumulate locally.
  void set_sync(bool on) { sync_ = on; }
  // After the step's last backward: launches the buckets not yet launched (parameters without
  // a gradient contribute zeros), waits for all, and leaves every parameter's .grad equal to
  // the mean over ranks.
  void finish();

  size_t num_buckets() const { return buckets_.size(); }
  int64_t bytes_per_step() const { return bytes_per_step_; }  // gradient bytes all-reduced

  // Called from the hook of parameter `index` once its .grad holds this backward's gradient.
  void on_grad_ready(size_t index);

 private:
  struct Bucket {
    std::vector<size_t> params;
    size_t pending = 0;
    bool launched = false;
    torch::Tensor flat;  // [sum of numel]: the gradients being reduced
    std::unique_ptr<ProcessGroup::Work> work;
  };
  void launch_ready_buckets(bool force);

  std::vector<torch::Tensor> params_;
  std::shared_ptr<ProcessGroup> pg_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;
  size_t next_launch_ = 0;  // buckets launch in index order on every rank (same collective order)
  bool sync_ = true;
  int64_t bytes_per_step_ = 0;
};

}  // namespace reef
