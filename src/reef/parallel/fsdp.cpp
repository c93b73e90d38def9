// Implementation of parallel/fsdp.h.
#include "reef/parallel/fsdp.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "reef/base/error.h"

namespace reef {
namespace {

struct UnitGradHook : torch::autograd::PostAccumulateGradHook {
  UnitGradHook(Fsdp* fsdp, size_t unit) : fsdp_(fsdp), unit_(unit) {}
  void operator()(const torch::autograd::Variable&) override { fsdp_->on_grad_ready(unit_); }
  Fsdp* fsdp_;
  size_t unit_;
};

// FSDP's unit around a decoder layer (FSDP2's fully_shard on a block, which PyTorch does with
// module hooks): takes the layer's place in the body, holds the same children under the same
// names, and gathers the layer's parameters around its forward (and, through a gradient hook on
// its output, before its backward).
class FsdpLayerImpl : public DecoderLayerWrapperImpl {
 public:
  FsdpLayerImpl(std::shared_ptr<torch::nn::Module> inner, Fsdp* fsdp)
      : DecoderLayerWrapperImpl(std::move(inner)), fsdp_(fsdp) {}
  torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx, int64_t layer) override {
    return fsdp_->around_layer(
        layer, x, [&](const torch::Tensor& in) { return inner().forward(in, ctx, layer); });
  }

 private:
  Fsdp* fsdp_;
};

// Frees / re-allocates a tensor's storage in place (torch's untyped_storage().resize_()): every
// view of it, autograd's saved ones included, keeps pointing at the same StorageImpl.
void free_storage(const torch::Tensor& t) {
  auto* s = t.storage().unsafeGetStorageImpl();
  s->set_data_ptr_noswap(c10::DataPtr(nullptr, t.device()));
  s->set_nbytes(0);
}
void allocate_storage(const torch::Tensor& t) {
  auto* s = t.storage().unsafeGetStorageImpl();
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  s->set_data_ptr_noswap(s->allocator()->allocate(bytes));
  s->set_nbytes(bytes);
}

}  // namespace

Fsdp::Fsdp(CausalLM model, std::shared_ptr<ProcessGroup> dp,
           const std::function<bool(const std::string&, const torch::Tensor&)>& decays)
    : model_(std::move(model)), pg_(std::move(dp)) {
  const auto& cfg = model_->config();
  defer_reduce_ = cfg.n_experts > 0;
  const int64_t L = cfg.n_layers;
  units_.resize(static_cast<size_t>(L) + 1);
  // Each decoder layer's parameters are a unit; the rest (embeddings, final norm, head) the root.
  std::unordered_map<const void*, int64_t> layer_of;
  for (int64_t i = 0; i < L; ++i) {
    units_[i].name = "decoder layer " + std::to_string(i);
    for (const auto& p : model_->body().layer_module(i)->parameters())
      layer_of[p.unsafeGetTensorImpl()] = i;
  }
  units_[L].name = "root";
  for (const auto& item : model_->named_parameters(true)) {
    const torch::Tensor& p = item.value();
    if (!p.requires_grad())
      fail("parallel.zero=3: parameter {} is frozen; FSDP shards trainable models only",
           item.key());
    if (p.scalar_type() != torch::kFloat)
      fail("parallel.zero=3: parameter {} is {}; FSDP shards float32 parameters only", item.key(),
           c10::toString(p.scalar_type()));
    auto it = layer_of.find(p.unsafeGetTensorImpl());
    Unit& u = units_[it == layer_of.end() ? L : it->second];
    u.params.push_back({item.key(), p, 0, decays(item.key(), p)});
  }
  const int n = pg_->size(), r = pg_->rank();
  torch::NoGradGuard ng;
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    Unit& u = units_[ui];
    std::stable_partition(u.params.begin(), u.params.end(), [](const Param& p) { return p.decay; });
    for (auto& p : u.params) {
      p.offset = u.numel;
      u.numel += p.tensor.numel();
      if (p.decay) u.decay_numel += p.tensor.numel();
    }
    u.shard = std::max<int64_t>(1, (u.numel + n - 1) / n);
    u.full = torch::zeros(
        {u.shard * n},
        torch::TensorOptions().dtype(torch::kFloat).device(model_->parameters()[0].device()));
    for (auto& p : u.params) {
      u.full.narrow(0, p.offset, p.tensor.numel()).copy_(p.tensor.detach().reshape({-1}));
      p.tensor.set_data(u.full.narrow(0, p.offset, p.tensor.numel()).view(p.tensor.sizes()));
      torch::autograd::impl::set_post_acc_grad_hooks(p.tensor,
                                                     std::make_unique<UnitGradHook>(this, ui));
    }
    u.local = u.full.narrow(0, u.shard * r, u.shard).clone();
    const int64_t k = std::clamp<int64_t>(u.decay_numel - u.shard * r, 0, u.shard);
    if (k > 0) u.decay_leaf = u.local.narrow(0, 0, k).detach().set_requires_grad(true);
    if (k < u.shard)
      u.no_decay_leaf = u.local.narrow(0, k, u.shard - k).detach().set_requires_grad(true);
    u.gathered = true;
    release(u);
  }
  for (int64_t i = 0; i < L; ++i)
    model_->body().replace_layer(
        i, std::make_shared<FsdpLayerImpl>(model_->body().layer_module(i), this));
}

Fsdp::~Fsdp() {
  for (int64_t i = 0; i < model_->body().n_layers(); ++i)
    if (auto* w = model_->body().layer_module(i)->as<FsdpLayerImpl>())
      model_->body().replace_layer(i, w->inner_module());
  for (auto& u : units_)
    for (auto& p : u.params) torch::autograd::impl::set_post_acc_grad_hooks(p.tensor, nullptr);
}

std::vector<Fsdp::LocalRange> Fsdp::local_ranges(const Unit& u) const {
  std::vector<LocalRange> out;
  const int64_t lo = u.shard * pg_->rank(), hi = lo + u.shard;
  for (const auto& p : u.params) {
    const int64_t b = std::max(lo, p.offset), e = std::min(hi, p.offset + p.tensor.numel());
    if (b < e) out.push_back({&p, b - p.offset, e - b, b - lo});
  }
  return out;
}

void Fsdp::gather(Unit& u) {
  if (u.gathered) return;
  torch::NoGradGuard ng;
  if (u.gathering) {  // prefetched: wait for it to land
    u.gathering->wait();
    u.gathering.reset();
  } else {
    allocate_storage(u.full);
    pg_->all_gather(u.full, u.local);
  }
  u.gathered = true;
}

void Fsdp::prefetch(Unit& u) {
  if (u.gathered || u.gathering) return;
  allocate_storage(u.full);
  u.gathering = pg_->all_gather_async(u.full, u.local);
}

void Fsdp::release(Unit& u) {
  if (u.gathering) gather(u);  // never free a buffer a collective is still writing
  if (!u.gathered) return;
  free_storage(u.full);
  u.gathered = false;
}

torch::Tensor Fsdp::around_layer(int64_t layer, const torch::Tensor& x,
                                 const std::function<torch::Tensor(const torch::Tensor&)>& run) {
  const size_t ui = static_cast<size_t>(layer), n_layers = units_.size() - 1;
  Unit& u = units_.at(ui);
  gather(u);
  if (ui + 1 < n_layers) prefetch(units_[ui + 1]);  // the next layer's gather overlaps this one
  torch::Tensor out = run(x);
  release(u);
  if (out.requires_grad()) {  // training: gather again right before this layer's backward
    out.register_hook([this, ui](torch::Tensor) {
      Unit& v = units_[ui];
      gather(v);
      if (ui > 0) prefetch(units_[ui - 1]);  // backward goes down the layers
      v.pending = v.params.size();
      v.reduced = false;
    });
  }
  return out;
}

void Fsdp::gather_root() {
  Unit& root = units_.back();
  gather(root);
  if (torch::GradMode::is_enabled()) {
    root.pending = root.params.size();
    root.reduced = false;
  }
}

void Fsdp::on_grad_ready(size_t unit) {
  Unit& u = units_[unit];
  if (u.pending > 0) --u.pending;
  if (u.pending == 0 && !u.reduced && !defer_reduce_ && unit + 1 < units_.size()) reduce_grads(u);
}

void Fsdp::reduce_grads(Unit& u) {
  torch::NoGradGuard ng;
  const int n = pg_->size();
  auto flat = torch::zeros({u.shard * n}, u.local.options());
  for (auto& p : u.params) {
    const auto& g = p.tensor.grad();
    if (g.defined()) flat.narrow(0, p.offset, p.tensor.numel()).copy_(g.reshape({-1}));
    p.tensor.mutable_grad() = torch::Tensor();
  }
  flat.div_(static_cast<double>(n));
  // One reduce-scatter in flight at a time: it overlaps the next unit's backward, and at most
  // two full flat gradients exist at once.
  for (auto& other : units_) finish_reduce(other);
  u.reduce_in = flat;
  u.reduce_out = torch::empty({u.shard}, u.local.options());
  u.reducing = pg_->reduce_scatter_sum_async(u.reduce_out, u.reduce_in);
  u.reduced = true;
  release(u);
}

void Fsdp::finish_reduce(Unit& u) {
  if (!u.reducing) return;
  u.reducing->wait();
  u.reducing.reset();
  if (u.grad.defined())
    u.grad.add_(u.reduce_out);
  else
    u.grad = u.reduce_out;
  u.reduce_in = u.reduce_out = torch::Tensor();
}

void Fsdp::after_backward() {
  for (auto& u : units_)
    if (!u.reduced) reduce_grads(u);
  for (auto& u : units_) finish_reduce(u);
  release_all();
}

void Fsdp::gather_all() {
  for (auto& u : units_) gather(u);
}

void Fsdp::release_all() {
  for (auto& u : units_) release(u);
}

void Fsdp::reshard_from_params() {
  torch::NoGradGuard ng;
  for (auto& u : units_) {
    if (!u.gathered)
      fail("Fsdp::reshard_from_params: unit {} is not gathered (internal error)", u.name);
    u.local.copy_(u.full.narrow(0, u.shard * pg_->rank(), u.shard));
    release(u);
  }
}

void Fsdp::zero_grad() {
  for (auto& u : units_) {
    u.grad = torch::Tensor();
    for (auto* leaf : {&u.decay_leaf, &u.no_decay_leaf})
      if (leaf->defined()) leaf->mutable_grad() = torch::Tensor();
  }
}

void Fsdp::prepare_step() {
  for (auto& u : units_) {
    if (!u.grad.defined()) u.grad = torch::zeros({u.shard}, u.local.options());
    int64_t at = 0;
    for (auto* leaf : {&u.decay_leaf, &u.no_decay_leaf}) {
      if (!leaf->defined()) continue;
      leaf->mutable_grad() = u.grad.narrow(0, at, leaf->numel());
      at += leaf->numel();
    }
  }
}

double Fsdp::clip_grad_norm(double max_norm) {
  torch::NoGradGuard ng;
  double sq = 0;
  for (auto& u : units_)
    if (u.grad.defined()) sq += u.grad.to(torch::kDouble).pow(2).sum().item<double>();
  auto t = torch::tensor({sq}, torch::kDouble);
  pg_->all_reduce_sum(t);
  const double total = std::sqrt(t.item<double>());
  if (max_norm > 0 && total > max_norm) {
    const double scale = max_norm / (total + 1e-6);
    for (auto& u : units_)
      if (u.grad.defined()) u.grad.mul_(scale);
  }
  return total;
}

int64_t Fsdp::local_elements() const {
  int64_t n = 0;
  for (const auto& u : units_) n += u.local.numel();
  return n;
}

int64_t Fsdp::total_elements() const {
  int64_t n = 0;
  for (const auto& u : units_) n += u.numel;
  return n;
}

}  // namespace reef
