// ZeRO-1: AdamW whose state is sharded over the data-parallel ranks. Each parameter group's
// parameters are seen as one flat vector split into equal slices (the last padded); a rank
// keeps Adam moments for its slice only, updates that slice with libtorch's AdamW (the same
// element-wise arithmetic as the unsharded optimizer) and all-gathers the updated slices
// into every rank's parameters. Consolidated checkpoints hold the full state, gathered, under
// the same names as the unsharded optimizer's; distributed ones (checkpoint/dist_checkpoint.h)
// hold each rank's slices as flat ranges of those tensors (local_state / load_local_state), so
// a run resumes at any world size either way.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "reef/config/config.h"
#include "reef/parallel/process_group.h"

namespace reef {

struct ZeroParamGroup {
  std::vector<std::pair<std::string, torch::Tensor>> params;  // named trainable parameters
  double weight_decay = 0.0;
};

class ZeroAdamW {
 public:
  // Hyperparameters from `cfg` (lr, betas, eps); weight decay per group.
  ZeroAdamW(std::vector<ZeroParamGroup> groups, const OptimConfig& cfg,
            std::shared_ptr<ProcessGroup> pg);
  void set_lr(double lr);
  // Every parameter's .grad must hold the full gradient (already averaged over ranks).
  void step();
  // The full Adam moments as "<param>.exp_avg" / "<param>.exp_avg_sq" and the step count.
  // A collective: every rank must call it.
  std::vector<std::pair<std::string, torch::Tensor>> gather_state(int64_t* step);
  // Takes this rank's slice of a full state (as gather_state returns it); step 0: no state.
  void load_state(const std::map<std::string, torch::Tensor>& full, int64_t step);
  // One parameter's part of this rank's slice: elements [begin, begin + length) of the
  // flattened parameter, with views of the two moments over them ([length] each).
  struct LocalState {
    std::string param;
    std::vector<int64_t> shape;  // the parameter's
    int64_t begin = 0, length = 0;
    torch::Tensor exp_avg, exp_avg_sq;
  };
  // This rank's slices, without communication; empty (and *step 0) before the first step.
  std::vector<LocalState> local_state(int64_t* step) const;
  // Reads elements [begin, begin + length) of the flattened tensor `name` ("<param>.exp_avg",
  // "<param>.exp_avg_sq") as a [length] tensor.
  using FlatReader =
      std::function<torch::Tensor(const std::string& name, int64_t begin, int64_t length)>;
  // Takes this rank's slice through `read` (no communication); step 0: no state.
  void load_local_state(const FlatReader& read, int64_t step);
  // Elements of the optimizer state this rank holds per moment (all groups).
  int64_t local_state_elements() const;

 private:
  struct Group {
    std::vector<std::pair<std::string, torch::Tensor>> params;
    int64_t numel = 0, shard = 0;  // total elements; slice length per rank
    torch::Tensor local;           // [shard] this rank's slice of the flat parameters
  };
  torch::Tensor flat_padded(const Group& g, bool grads) const;  // [shard * size]
  int64_t offset(const Group& g) const { return g.shard * pg_->rank(); }

  std::vector<Group> groups_;
  std::shared_ptr<ProcessGroup> pg_;
  std::unique_ptr<torch::optim::AdamW> opt_;
};

}  // namespace reef
