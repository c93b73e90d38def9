// Implementation of train/schedule.h.
#include "reef/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "reef/base/error.h"

namespace reef {

double lr_at_step(const OptimConfig& o, int64_t step, int64_t max_steps) {
  if (o.warmup_steps > 0 && step < o.warmup_steps)
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.schedule == "constant") return o.lr;
  int64_t decay_steps = max_steps - o.warmup_steps - 1;
  double p = decay_steps > 0 ? static_cast<double>(step - o.warmup_steps) / decay_steps : 1.0;
  p = std::min(1.0, std::max(0.0, p));
  if (o.schedule == "linear") return o.lr - (o.lr - o.min_lr) * p;
  if (o.schedule == "cosine")
    return o.min_lr + (o.lr - o.min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
  usage_error("optim.schedule: unknown schedule '{}' (expected cosine, linear or constant)",
              o.schedule);
}

}  // namespace reef
