// A small central-difference gradient checker for float64 tests (torch.autograd.gradcheck has
// no C++ counterpart): compares autograd gradients of a scalar loss with finite differences.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace reef::testing {

// Largest |analytic - numeric| / (atol + rtol * |numeric|) over every element of every input;
// <= 1 means all gradients agree. `inputs` are float64 leaves with requires_grad (module
// parameters included); `loss` recomputes a scalar from them. Perturbs inputs in place and
// restores them.
inline double gradient_error(const std::function<torch::Tensor()>& loss,
                             const std::vector<torch::Tensor>& inputs, double eps = 1e-6,
                             double atol = 1e-7, double rtol = 1e-5) {
  for (auto& x : inputs) {
    if (x.grad().defined()) x.mutable_grad().zero_();
  }
  auto analytic = torch::autograd::grad({loss()}, inputs);
  double worst = 0.0;
  torch::NoGradGuard no_grad;
  for (size_t n = 0; n < inputs.size(); ++n) {
    auto flat = inputs[n].view({-1});
    auto grad = analytic[n].reshape({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double orig = flat[i].item<double>();
      flat[i] = orig + eps;
      const double up = loss().item<double>();
      flat[i] = orig - eps;
      const double down = loss().item<double>();
      flat[i] = orig;
      const double numeric = (up - down) / (2 * eps);
      const double err =
          std::abs(grad[i].item<double>() - numeric) / (atol + rtol * std::abs(numeric));
      worst = std::max(worst, err);
    }
  }
  return worst;
}

// A fixed random projection that turns any output into a scalar with non-trivial gradients.
inline torch::Tensor weighted_sum(const torch::Tensor& y, const torch::Tensor& w) {
  return (y * w).sum();
}

}  // namespace reef::testing
