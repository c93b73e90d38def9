// Implementation of ReplicatedStrategy (parallel/strategies.h): one process, DDP, ZeRO-1,
// tensor parallelism and dp x tp.
#include "reef/base/log.h"
#include "reef/parallel/strategies.h"

namespace reef {

ReplicatedStrategy::ReplicatedStrategy(CausalLM model, const Config& cfg,
                                       std::shared_ptr<ProcessGroup> world, Mesh mesh,
                                       NamedParams trainable)
    : Strategy(std::move(model), cfg, std::move(world), mesh) {
  // Identical initial weights everywhere, before tensor parallelism slices them.
  if (world_size() > 1) broadcast_module_from_rank0(*model_, *world_);
  groups_ = make_mesh_groups(mesh_, world_);
  if (groups_.tp)  // slices the model
    tp_ = std::make_unique<TensorParallel>(model_, groups_.tp, cfg_.parallel.sequence_parallel);
  if (trainable.empty())
    for (const auto& item : model_->named_parameters(true))
      trainable.emplace_back(item.key(), item.value());
  std::vector<torch::Tensor> synced;
  for (const auto& [name, t] : trainable)
    if (t.requires_grad()) synced.push_back(t);
  optimizer_ = std::make_unique<Optimizer>(trainable, cfg_.optim,
                                           mesh_.zero >= 1 && mesh_.dp > 1 ? groups_.dp : nullptr);
  if (mesh_.dp > 1)
    grad_sync_ = std::make_unique<GradientSync>(synced, groups_.dp, cfg_.parallel.bucket_mb);
}

void ReplicatedStrategy::forward_backward(int64_t n, int64_t, const BatchFn& batch,
                                          const LossFn& loss) {
  for (int64_t m = 0; m < n; ++m) {
    if (grad_sync_) grad_sync_->set_sync(m == n - 1);  // all-reduce during the last backward
    loss(forward(batch(m), tp_.get()), m).backward();
  }
}

void ReplicatedStrategy::forward_only(const std::vector<int64_t>& rows, int64_t,
                                      const BatchFn& batch, const OutputsFn& read) {
  for (size_t k = 0; k < rows.size(); ++k) read(forward(batch(k), tp_.get()), k);
}

double ReplicatedStrategy::finish_gradients(double max_norm) {
  if (grad_sync_) grad_sync_->finish();
  if (!tp_) return optimizer_->clip_grad_norm(max_norm);
  tp_->reduce_partial_gradients();  // sequence-parallel norms, Qwen3's q/k norms
  return tp_->clip_grad_norm(max_norm);
}

std::vector<ShardedParam> ReplicatedStrategy::sharded_params() const {
  if (!tp_) return Strategy::sharded_params();
  return tensor_parallel_params(model_, mesh_, rank(), tp_.get());
}

Consolidated ReplicatedStrategy::consolidate(bool with_optimizer) {
  if (!tp_) return Strategy::consolidate(with_optimizer);
  // The unsharded checkpoint a single process reads: gathered over the tp group.
  Consolidated c;
  if (with_optimizer) {
    optimizer_->gather_state();  // ZeRO: every rank takes part
    c.optimizer_state = tp_->gather_state(optimizer_->state_tensors(&c.optimizer_step));
    optimizer_->release_gathered_state();
  }
  CausalLM full = tp_->gather_model();
  if (rank() == 0)
    c.model = full;
  else
    c.optimizer_state.clear();
  return c;
}

CollectiveBytes ReplicatedStrategy::bytes() const {
  CollectiveBytes sum = Strategy::bytes();
  for (const auto& g : {groups_.dp, groups_.tp})
    if (g && g != world_) sum += g->bytes();  // a subgroup of the world: its own counters
  return sum;
}

std::vector<ShardedParam> tensor_parallel_params(const CausalLM& model, const Mesh& mesh, int rank,
                                                 const TensorParallel* tp) {
  std::vector<ShardedParam> out;
  const MeshCoord me = mesh_coord(mesh, rank);
  for (const auto& item : model->named_parameters(true)) {
    ShardedParam p;
    p.name = item.key();
    p.local = item.value();
    p.global_shape = p.local.sizes().vec();
    p.replicas = "stage";  // pipeline: the stage's dp replicas hold the same tensors
    p.replica_index = me.dp_rank;
    p.n_replicas = mesh.dp;
    if (tp) {
      const int64_t d = tp->shard_dim(p.name);
      if (d >= 0) {  // the dp replicas of this tp rank hold the same slice
        p.global_shape[d] *= mesh.tp;
        p.offsets.assign(p.global_shape.size(), 0);
        p.offsets[d] = me.tp_rank * p.local.size(d);
        p.replicas = "tp-slice";
      } else {  // replicated over the tp group too; its first rank writes the ZeRO-1 slices
        p.replicas = "replicated";
        p.replica_index = me.dp_rank * mesh.tp + me.tp_rank;
        p.n_replicas = mesh.dp * mesh.tp;
        p.write_zero_slices = me.tp_rank == 0;
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace reef
