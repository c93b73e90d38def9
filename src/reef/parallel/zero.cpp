// Implementation of parallel/zero.h.
#include "reef/parallel/zero.h"

#include <algorithm>

#include "reef/base/error.h"

namespace reef {

ZeroAdamW::ZeroAdamW(std::vector<ZeroParamGroup> groups, const OptimConfig& cfg,
                     std::shared_ptr<ProcessGroup> pg)
    : pg_(std::move(pg)) {
  std::vector<torch::optim::OptimizerParamGroup> opt_groups;
  for (auto& zg : groups) {
    Group g;
    g.params = std::move(zg.params);
    for (auto& [name, p] : g.params) g.numel += p.numel();
    const int64_t n = pg_->size();
    g.shard = (g.numel + n - 1) / n;
    g.local = flat_padded(g, false).narrow(0, offset(g), g.shard).clone().set_requires_grad(true);
    auto opts = std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(cfg.lr)
                                                                 .betas({cfg.beta1, cfg.beta2})
                                                                 .eps(cfg.eps)
                                                                 .weight_decay(zg.weight_decay));
    opt_groups.emplace_back(std::vector<torch::Tensor>{g.local}, std::move(opts));
    groups_.push_back(std::move(g));
  }
  opt_ = std::make_unique<torch::optim::AdamW>(opt_groups, torch::optim::AdamWOptions(cfg.lr));
}

torch::Tensor ZeroAdamW::flat_padded(const Group& g, bool grads) const {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> parts;
  for (const auto& [name, p] : g.params) {
    if (!grads)
      parts.push_back(p.detach().reshape({-1}));
    else if (p.grad().defined())
      parts.push_back(p.grad().detach().reshape({-1}));
    else
      parts.push_back(torch::zeros({p.numel()}, p.options()));
  }
  const int64_t pad = g.shard * pg_->size() - g.numel;
  if (pad > 0 || parts.empty())
    parts.push_back(torch::zeros({pad}, torch::TensorOptions().dtype(torch::kFloat)));
  return torch::cat(parts);
}

void ZeroAdamW::set_lr(double lr) {
  for (auto& g : opt_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

void ZeroAdamW::step() {
  {
    torch::NoGradGuard ng;
    for (auto& g : groups_) {
      // The slice follows the live parameters (a checkpoint load may have replaced them).
      g.local.detach().copy_(flat_padded(g, false).narrow(0, offset(g), g.shard));
      g.local.mutable_grad() = flat_padded(g, true).narrow(0, offset(g), g.shard).clone();
    }
  }
  opt_->step();
  torch::NoGradGuard ng;
  for (auto& g : groups_) {
    auto full = torch::empty({g.shard * pg_->size()}, g.local.options().requires_grad(false));
    pg_->all_gather(full, g.local.detach());
    int64_t at = 0;
    for (auto& [name, p] : g.params) {
      p.detach().copy_(full.narrow(0, at, p.numel()).view(p.sizes()));
      at += p.numel();
    }
  }
}

std::vector<std::pair<std::string, torch::Tensor>> ZeroAdamW::gather_state(int64_t* step) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  *step = 0;
  auto& state = opt_->state();
  // Every rank holds state once any step has run, so the ranks agree on whether to gather.
  for (auto& g : groups_) {
    auto it = state.find(g.local.unsafeGetTensorImpl());
    if (it == state.end()) return {};
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    *step = s.step();
    for (int which = 0; which < 2; ++which) {
      const torch::Tensor& mine = which == 0 ? s.exp_avg() : s.exp_avg_sq();
      auto full = torch::empty({g.shard * pg_->size()}, mine.options());
      pg_->all_gather(full, mine.contiguous());
      int64_t at = 0;
      for (auto& [name, p] : g.params) {
        out.emplace_back(name + (which == 0 ? ".exp_avg" : ".exp_avg_sq"),
                         full.narrow(0, at, p.numel()).view(p.sizes()).clone());
        at += p.numel();
      }
    }
  }
  return out;
}

void ZeroAdamW::load_state(const std::map<std::string, torch::Tensor>& full, int64_t step) {
  auto& state = opt_->state();
  state.clear();
  if (step == 0) return;
  for (auto& g : groups_) {
    std::vector<torch::Tensor> avg, avg_sq;
    for (auto& [name, p] : g.params) {
      auto a = full.find(name + ".exp_avg"), b = full.find(name + ".exp_avg_sq");
      if (a == full.end() || b == full.end())
        fail("optimizer state has no moments for parameter {}", name);
      if (!a->second.sizes().equals(p.sizes()) || !b->second.sizes().equals(p.sizes()))
        fail("optimizer state for {} has shape {} but the parameter has {}", name,
             c10::str(a->second.sizes()), c10::str(p.sizes()));
      avg.push_back(a->second.to(p.device(), p.scalar_type()).reshape({-1}));
      avg_sq.push_back(b->second.to(p.device(), p.scalar_type()).reshape({-1}));
    }
    const int64_t pad = g.shard * pg_->size() - g.numel;
    auto slice = [&](std::vector<torch::Tensor>& parts) {
      if (pad > 0) parts.push_back(torch::zeros({pad}, g.local.options().requires_grad(false)));
      return torch::cat(parts).narrow(0, offset(g), g.shard).clone();
    };
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step);
    s->exp_avg(slice(avg));
    s->exp_avg_sq(slice(avg_sq));
    state[g.local.unsafeGetTensorImpl()] = std::move(s);
  }
}

std::vector<ZeroAdamW::LocalState> ZeroAdamW::local_state(int64_t* step) const {
  std::vector<LocalState> out;
  *step = 0;
  const auto& state = opt_->state();
  for (const auto& g : groups_) {
    auto it = state.find(g.local.unsafeGetTensorImpl());
    if (it == state.end()) return {};
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    *step = s.step();
    const int64_t lo = offset(g), hi = lo + g.shard;
    int64_t at = 0;  // the parameter's first element in the group's flat vector
    for (const auto& [name, p] : g.params) {
      const int64_t b = std::max(lo, at), e = std::min(hi, at + p.numel());
      if (b < e)
        out.push_back({name, p.sizes().vec(), b - at, e - b, s.exp_avg().narrow(0, b - lo, e - b),
                       s.exp_avg_sq().narrow(0, b - lo, e - b)});
      at += p.numel();
    }
  }
  return out;
}

void ZeroAdamW::load_local_state(const FlatReader& read, int64_t step) {
  auto& state = opt_->state();
  state.clear();
  if (step == 0) return;
  torch::NoGradGuard ng;
  for (auto& g : groups_) {
    auto avg = torch::zeros({g.shard}, g.local.options().requires_grad(false));
    auto avg_sq = torch::zeros({g.shard}, g.local.options().requires_grad(false));
    const int64_t lo = offset(g), hi = lo + g.shard;
    int64_t at = 0;
    for (const auto& [name, p] : g.params) {
      const int64_t b = std::max(lo, at), e = std::min(hi, at + p.numel());
      if (b < e) {
        avg.narrow(0, b - lo, e - b).copy_(read(name + ".exp_avg", b - at, e - b));
        avg_sq.narrow(0, b - lo, e - b).copy_(read(name + ".exp_avg_sq", b - at, e - b));
      }
      at += p.numel();
    }
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step);
    s->exp_avg(avg);
    s->exp_avg_sq(avg_sq);
    state[g.local.unsafeGetTensorImpl()] = std::move(s);
  }
}

int64_t ZeroAdamW::local_state_elements() const {
  int64_t n = 0;
  for (const auto& g : groups_) n += g.shard;
  return n;
}

}  // namespace reef
