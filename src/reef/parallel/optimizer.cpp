// Implementation of parallel/optimizer.h.
#include "reef/parallel/optimizer.h"

#include <cmath>

#include "reef/base/error.h"
#include "reef/base/strings.h"

namespace reef {

bool param_gets_weight_decay(const std::string& name, const torch::Tensor& p, bool decay_all) {
  if (decay_all) return true;
  if (p.dim() < 2) return false;  // norms and biases
  return !(ends_with(name, "embed_tokens.weight") || ends_with(name, "wte.weight") ||
           ends_with(name, "wpe.weight"));
}

namespace {

// libtorch AdamW over two groups: `decay` with cfg.weight_decay, `no_decay` without.
std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<torch::Tensor>& decay,
                                                const std::vector<torch::Tensor>& no_decay,
                                                const OptimConfig& cfg) {
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(cfg.lr)
                                                            .betas({cfg.beta1, cfg.beta2})
                                                            .eps(cfg.eps)
                                                            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, opts(cfg.weight_decay));
  groups.emplace_back(no_decay, opts(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(cfg.lr));
}

}  // namespace

Optimizer::Optimizer(const NamedParams& params, const OptimConfig& cfg,
                     std::shared_ptr<ProcessGroup> zero_group)
    : params_(params) {
  if (cfg.name != "adamw")
    usage_error("optim.name: unknown optimizer '{}' (expected adamw)", cfg.name);
  std::vector<torch::Tensor> decay, no_decay;
  ZeroParamGroup zero_decay, zero_no_decay;
  zero_decay.weight_decay = cfg.weight_decay;
  for (const auto& [name, p] : params_) {
    if (!p.requires_grad()) continue;
    if (param_gets_weight_decay(name, p, cfg.decay_norms_and_biases)) {
      decay.push_back(p);
      zero_decay.params.emplace_back(name, p);
      n_decay_ += p.numel();
    } else {
      no_decay.push_back(p);
      zero_no_decay.params.emplace_back(name, p);
      n_no_decay_ += p.numel();
    }
  }
  if (zero_group && zero_group->size() > 1) {
    zero_ = std::make_unique<ZeroAdamW>(std::vector<ZeroParamGroup>{zero_decay, zero_no_decay}, cfg,
                                        std::move(zero_group));
    return;
  }
  opt_ = make_adamw(decay, no_decay, cfg);
}

Optimizer::Optimizer(Fsdp& fsdp, const OptimConfig& cfg) : fsdp_(&fsdp) {
  if (cfg.name != "adamw")
    usage_error("optim.name: unknown optimizer '{}' (expected adamw)", cfg.name);
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& u : fsdp.units()) {
    if (u.decay_leaf.defined()) decay.push_back(u.decay_leaf);
    if (u.no_decay_leaf.defined()) no_decay.push_back(u.no_decay_leaf);
    for (const auto& p : u.params) {
      params_.emplace_back(p.name, p.tensor);
      (p.decay ? n_decay_ : n_no_decay_) += p.tensor.numel();
    }
  }
  opt_ = make_adamw(decay, no_decay, cfg);
}

void Optimizer::step() {
  if (zero_) return zero_->step();
  if (fsdp_) fsdp_->prepare_step();
  opt_->step();
}

torch::Tensor Optimizer::fsdp_moment(const Fsdp::Unit& u, int which) const {
  std::vector<torch::Tensor> parts;
  for (const auto* leaf : {&u.decay_leaf, &u.no_decay_leaf}) {
    if (!leaf->defined()) continue;
    auto it = opt_->state().find(leaf->unsafeGetTensorImpl());
    if (it == opt_->state().end()) return {};
    auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    parts.push_back(which == 0 ? s.exp_avg() : s.exp_avg_sq());
  }
  return torch::cat(parts);
}

int64_t Optimizer::fsdp_step(const Fsdp::Unit& u) const {
  for (const auto* leaf : {&u.decay_leaf, &u.no_decay_leaf}) {
    if (!leaf->defined()) continue;
    auto it = opt_->state().find(leaf->unsafeGetTensorImpl());
    if (it != opt_->state().end())
      return static_cast<const torch::optim::AdamWParamState&>(*it->second).step();
  }
  return 0;
}

void Optimizer::fsdp_set_moments(Fsdp::Unit& u, const torch::Tensor& avg,
                                 const torch::Tensor& avg_sq, int64_t step) {
  int64_t at = 0;
  for (auto* leaf : {&u.decay_leaf, &u.no_decay_leaf}) {
    if (!leaf->defined()) continue;
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step);
    s->exp_avg(avg.narrow(0, at, leaf->numel()).clone());
    s->exp_avg_sq(avg_sq.narrow(0, at, leaf->numel()).clone());
    opt_->state()[leaf->unsafeGetTensorImpl()] = std::move(s);
    at += leaf->numel();
  }
}

void Optimizer::gather_state() {
  if (zero_) gathered_ = zero_->gather_state(&gathered_step_);
  if (!fsdp_) return;
  gathered_.clear();
  gathered_step_ = 0;
  auto& pg = fsdp_->group();
  for (auto& u : fsdp_->units()) {
    // Every rank has state once any step ran, so the ranks agree on whether to gather.
    if (!fsdp_moment(u, 0).defined()) return gathered_.clear();
    gathered_step_ = fsdp_step(u);
    for (int which = 0; which < 2; ++which) {
      auto full = torch::empty({u.shard * pg.size()}, u.local.options());
      pg.all_gather(full, fsdp_moment(u, which));
      for (const auto& p : u.params)
        gathered_.emplace_back(
            p.name + (which == 0 ? ".exp_avg" : ".exp_avg_sq"),
            full.narrow(0, p.offset, p.tensor.numel()).view(p.tensor.sizes()).clone());
    }
  }
}

void Optimizer::set_lr(double lr) {
  if (zero_) return zero_->set_lr(lr);
  for (auto& g : opt_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

double Optimizer::clip_grad_norm(double max_norm) {
  if (fsdp_) return fsdp_->clip_grad_norm(max_norm);
  std::vector<torch::Tensor> grads;
  for (const auto& [name, p] : params_)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  std::vector<torch::Tensor> norms;
  for (auto& g : grads) norms.push_back(g.detach().to(torch::kFloat).norm(2));
  double total = torch::stack(norms).norm(2).item<double>();
  if (max_norm > 0 && total > max_norm) {
    double scale = max_norm / (total + 1e-6);
    torch::NoGradGuard ng;
    for (auto& g : grads) g.mul_(scale);
  }
  return total;
}

NamedParams Optimizer::state_tensors(int64_t* step) const {
  if (zero_ || fsdp_) {
    *step = gathered_step_;
    return gathered_;
  }
  NamedParams out;
  *step = 0;
  auto& state = opt_->state();
  for (const auto& [name, p] : params_) {
    auto it = state.find(p.unsafeGetTensorImpl());
    if (it == state.end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    out.emplace_back(name + ".exp_avg", s.exp_avg());
    out.emplace_back(name + ".exp_avg_sq", s.exp_avg_sq());
    *step = s.step();
  }
  return out;
}

std::vector<FlatPiece> Optimizer::local_state(int64_t* step) const {
  std::vector<FlatPiece> out;
  if (zero_) {
    for (auto& z : zero_->local_state(step)) {
      out.push_back({z.param + ".exp_avg", z.shape, z.begin, z.length, z.exp_avg});
      out.push_back({z.param + ".exp_avg_sq", z.shape, z.begin, z.length, z.exp_avg_sq});
    }
    return out;
  }
  if (fsdp_) {
    *step = 0;
    for (const auto& u : fsdp_->units()) {
      auto avg = fsdp_moment(u, 0), avg_sq = fsdp_moment(u, 1);
      if (!avg.defined()) return {};
      *step = fsdp_step(u);
      for (const auto& r : fsdp_->local_ranges(u)) {
        const auto shape = r.param->tensor.sizes().vec();
        out.push_back(
            {r.param->name + ".exp_avg", shape, r.begin, r.length, avg.narrow(0, r.at, r.length)});
        out.push_back({r.param->name + ".exp_avg_sq", shape, r.begin, r.length,
                       avg_sq.narrow(0, r.at, r.length)});
      }
    }
    return out;
  }
  for (auto& [name, t] : state_tensors(step)) {
    auto flat = t.reshape({-1});
    out.push_back({name, t.sizes().vec(), 0, flat.numel(), flat});
  }
  return out;
}

void Optimizer::load_local_state(const ZeroAdamW::FlatReader& read, int64_t step) {
  if (zero_) return zero_->load_local_state(read, step);
  if (fsdp_) {
    opt_->state().clear();
    if (step == 0) return;
    torch::NoGradGuard ng;
    for (auto& u : fsdp_->units()) {
      auto avg = torch::zeros({u.shard}, u.local.options()),
           avg_sq = torch::zeros({u.shard}, u.local.options());
      for (const auto& r : fsdp_->local_ranges(u)) {
        avg.narrow(0, r.at, r.length).copy_(read(r.param->name + ".exp_avg", r.begin, r.length));
        avg_sq.narrow(0, r.at, r.length)
            .copy_(read(r.param->name + ".exp_avg_sq", r.begin, r.length));
      }
      fsdp_set_moments(u, avg, avg_sq, step);
    }
    return;
  }
  std::map<std::string, torch::Tensor> full;
  if (step > 0)
    for (const auto& [name, p] : params_) {
      if (!p.requires_grad()) continue;
      for (const char* m : {".exp_avg", ".exp_avg_sq"})
        full[name + m] = read(name + m, 0, p.numel()).view(p.sizes());
    }
  load_state_tensors(full, step);
}

void Optimizer::load_state_tensors(const std::map<std::string, torch::Tensor>& t, int64_t step) {
  if (zero_) return zero_->load_state(t, step);
  if (fsdp_) {  // this rank's ranges of the full moments
    for (const auto& [name, p] : params_) {
      auto a = t.find(name + ".exp_avg"), b = t.find(name + ".exp_avg_sq");
      if (step > 0 && (a == t.end() || b == t.end()))
        fail("optimizer state has no moments for parameter {}", name);
      if (step > 0 &&
          (!a->second.sizes().equals(p.sizes()) || !b->second.sizes().equals(p.sizes())))
        fail("optimizer state for {} has shape {} but the parameter has {}", name,
             c10::str(a->second.sizes()), c10::str(p.sizes()));
    }
    return load_local_state(
        [&](const std::string& name, int64_t begin, int64_t length) {
          return t.at(name).reshape({-1}).narrow(0, begin, length);
        },
        step);
  }
  auto& state = opt_->state();
  state.clear();
  if (step == 0) return;
  for (const auto& [name, p] : params_) {
    if (!p.requires_grad()) continue;
    auto a = t.find(name + ".exp_avg"), b = t.find(name + ".exp_avg_sq");
    if (a == t.end() || b == t.end()) fail("optimizer state has no moments for parameter {}", name);
    if (!a->second.sizes().equals(p.sizes()) || !b->second.sizes().equals(p.sizes()))
      fail("optimizer state for {} has shape {} but the parameter has {}", name,
           c10::str(a->second.sizes()), c10::str(p.sizes()));
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step);
    s->exp_avg(a->second.to(p.device(), p.scalar_type()).clone());
    s->exp_avg_sq(b->second.to(p.device(), p.scalar_type()).clone());
    state[p.unsafeGetTensorImpl()] = std::move(s);
  }
}

}  // namespace reef
