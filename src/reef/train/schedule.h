// The learning-rate schedule: linear warmup, then cosine, linear or constant decay to min_lr.
#pragma once

#include <cstdint>

#include "reef/config/config.h"

namespace reef {

// Learning rate for the 0-based optimizer step `step` of `max_steps`.
double lr_at_step(const OptimConfig& o, int64_t step, int64_t max_steps);

}  // namespace reef
