// InputHook: the one forward pre-hook Reef's modules offer (PyTorch's register_forward_pre_hook,
// for a single input). A module that derives from it passes its input through hooked() first;
// a parallel plan (parallel/tensor_parallel.h) sets the hook on the modules it names (an
// Attention, a GatedMLP, the LM head's LogitsHead) to move activations into its region.
#pragma once

#include <torch/torch.h>

#include <functional>

namespace reef {

class InputHook {
 public:
  // x -> what forward sees instead of x. Null: x as is.
  std::function<torch::Tensor(const torch::Tensor&)> input_hook;

 protected:
  torch::Tensor hooked(const torch::Tensor& x) const { return input_hook ? input_hook(x) : x; }
};

}  // namespace reef
