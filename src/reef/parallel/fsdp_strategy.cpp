// Implementation of FsdpStrategy (parallel/strategies.h): ZeRO-3 over the data-parallel ranks.
#include "reef/base/log.h"
#include "reef/parallel/strategies.h"

namespace reef {

FsdpStrategy::FsdpStrategy(CausalLM model, const Config& cfg, std::shared_ptr<ProcessGroup> world,
                           Mesh mesh)
    : Strategy(std::move(model), cfg, std::move(world), mesh) {
  broadcast_module_from_rank0(*model_, *world_);  // identical initial weights, then sharded
  MeshGroups groups = make_mesh_groups(mesh_, world_);
  const bool decay_all = cfg_.optim.decay_norms_and_biases;
  fsdp_ = std::make_unique<Fsdp>(model_, groups.dp,
                                 [decay_all](const std::string& name, const torch::Tensor& p) {
                                   return param_gets_weight_decay(name, p, decay_all);
                                 });
  optimizer_ = std::make_unique<Optimizer>(*fsdp_, cfg_.optim);
  log_info(
      "zero=3 (FSDP): {} parameter units sharded over {} ranks; this rank holds {} of {} "
      "parameters",
      fsdp_->units().size(), mesh_.dp, fsdp_->local_elements(), fsdp_->total_elements());
}

void FsdpStrategy::forward_backward(int64_t n, int64_t, const BatchFn& batch, const LossFn& loss) {
  for (int64_t m = 0; m < n; ++m) {
    fsdp_->gather_root();  // the decoder layers gather themselves
    loss(forward(batch(m), nullptr), m).backward();
    fsdp_->after_backward();  // the root's reduce-scatter; every unit released
  }
}

void FsdpStrategy::forward_only(const std::vector<int64_t>& rows, int64_t, const BatchFn& batch,
                                const OutputsFn& read) {
  for (size_t k = 0; k < rows.size(); ++k) {
    fsdp_->gather_root();
    read(forward(batch(k), nullptr), k);
  }
  fsdp_->release_all();
}

double FsdpStrategy::finish_gradients(double max_norm) { return fsdp_->clip_grad_norm(max_norm); }

std::vector<FlatPiece> FsdpStrategy::flat_pieces() const {
  std::vector<FlatPiece> out;  // each rank's flat slices of the units' parameters
  for (const auto& u : fsdp_->units())
    for (const auto& r : fsdp_->local_ranges(u))
      out.push_back({r.param->name, r.param->tensor.sizes().vec(), r.begin, r.length,
                     u.local.narrow(0, r.at, r.length)});
  return out;
}

Consolidated FsdpStrategy::consolidate(bool with_optimizer) {
  Consolidated c = Strategy::consolidate(with_optimizer);  // the optimizer's gathered state
  fsdp_->gather_all();
  auto release_state = c.release;
  c.release = [this, release_state] {
    release_state();
    fsdp_->release_all();
  };
  return c;
}

}  // namespace reef
