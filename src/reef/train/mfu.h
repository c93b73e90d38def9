// Model FLOPs utilisation: achieved training FLOP/s over the peak matmul FLOP/s measured on
// this machine (once per device, thread count and dtype; cached in ~/.cache/reef/peak_flops.json).
#pragma once

#include <torch/torch.h>

namespace reef {

// Peak dense matmul FLOP/s for `dtype` on `device` with the current thread count.
double measured_peak_flops(const torch::Device& device, torch::ScalarType dtype);

}  // namespace reef
