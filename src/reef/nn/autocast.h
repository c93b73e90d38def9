// Autocast to bf16 for a scope: bf16 compute, fp32 weights (train.precision: bf16), used by the
// train step's forward passes and by DPO's reference pass so that both see the same numerics.
#pragma once

#include <ATen/autocast_mode.h>

namespace reef {

// Enables autocast to bf16 on `device` for its lifetime; nothing when `enabled` is false.
class AutocastScope {
 public:
  AutocastScope(bool enabled, c10::DeviceType device) : enabled_(enabled), device_(device) {
    if (!enabled_) return;
    prev_ = at::autocast::is_autocast_enabled(device_);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, prev_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_, prev_ = false;
  c10::DeviceType device_;
};

}  // namespace reef
