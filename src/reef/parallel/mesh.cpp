// Implementation of parallel/mesh.h.
#include "reef/parallel/mesh.h"

#include "reef/base/error.h"

namespace reef {

Mesh resolve_mesh(const ParallelConfig& p, int world_size) {
  if (p.pp < 1) usage_error("parallel.pp={}: expected 1 (no pipeline) or more stages", p.pp);
  Mesh m;
  m.tp = static_cast<int>(p.tp);
  m.pp = static_cast<int>(p.pp);
  m.zero = static_cast<int>(p.zero);
  const int64_t model_ranks = p.tp * p.pp;
  if (p.dp == 0) {
    if (world_size % model_ranks != 0)
      usage_error("the world size {} is not a multiple of parallel.tp={} x parallel.pp={}",
                  world_size, p.tp, p.pp);
    m.dp = static_cast<int>(world_size / model_ranks);
  } else {
    m.dp = static_cast<int>(p.dp);
  }
  if (m.world_size() != world_size)
    usage_error(
        "parallel.dp={} x tp={} x pp={} = {} ranks, but the run has {} (reef launch "
        "--nproc-per-node x --nnodes, or WORLD_SIZE); set parallel.dp=0 to take the world size",
        m.dp, m.tp, m.pp, m.world_size(), world_size);
  return m;
}

MeshCoord mesh_coord(const Mesh& m, int rank) {
  MeshCoord c;
  c.tp_rank = rank % m.tp;
  c.dp_rank = (rank / m.tp) % m.dp;
  c.pp_stage = rank / (m.tp * m.dp);
  return c;
}

int mesh_rank(const Mesh& m, int dp_rank, int pp_stage, int tp_rank) {
  return (pp_stage * m.dp + dp_rank) * m.tp + tp_rank;
}

std::vector<int> tp_group_ranks(const Mesh& m, int rank) {
  const MeshCoord c = mesh_coord(m, rank);
  std::vector<int> out;
  for (int t = 0; t < m.tp; ++t) out.push_back(mesh_rank(m, c.dp_rank, c.pp_stage, t));
  return out;
}

std::vector<int> dp_group_ranks(const Mesh& m, int rank) {
  const MeshCoord c = mesh_coord(m, rank);
  std::vector<int> out;
  for (int d = 0; d < m.dp; ++d) out.push_back(mesh_rank(m, d, c.pp_stage, c.tp_rank));
  return out;
}

std::string dp_group_name(const Mesh& m, int rank) {
  const MeshCoord c = mesh_coord(m, rank);
  return "dp.s" + std::to_string(c.pp_stage) + ".t" + std::to_string(c.tp_rank);
}

std::vector<LayerRange> split_layers(int64_t n_layers, int pp) {
  if (pp > n_layers)
    usage_error(
        "parallel.pp={}: the model has model.n_layers={} decoder layers and every pipeline "
        "stage needs at least one; use parallel.pp <= {}",
        pp, n_layers, n_layers);
  std::vector<LayerRange> out;
  int64_t at = 0;
  for (int s = 0; s < pp; ++s) {
    const int64_t n = n_layers / pp + (s < n_layers % pp ? 1 : 0);
    out.push_back({at, at + n});
    at += n;
  }
  return out;
}

BatchShard shard_global_batch(int64_t micro_batch_size, int64_t grad_accum, int dp, int dp_rank) {
  BatchShard s;
  s.global_batch = micro_batch_size * grad_accum;
  if (grad_accum % dp == 0) {
    s.micro_batch_size = micro_batch_size;
    s.accum_steps = grad_accum / dp;
  } else if (micro_batch_size % dp == 0) {
    s.micro_batch_size = micro_batch_size / dp;
    s.accum_steps = grad_accum;
  } else {
    usage_error(
        "the global batch (train.micro_batch_size={} x train.grad_accum={}) cannot be split "
        "evenly over {} data-parallel ranks: make train.grad_accum or "
        "train.micro_batch_size a multiple of {}",
        micro_batch_size, grad_accum, dp, dp);
  }
  s.first = static_cast<int64_t>(dp_rank) * (s.global_batch / dp);
  return s;
}

std::vector<std::vector<size_t>> plan_buckets(const std::vector<int64_t>& grad_bytes,
                                              int64_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t filled = 0;
  for (size_t k = grad_bytes.size(); k-- > 0;) {
    if (buckets.empty() || (filled > 0 && filled + grad_bytes[k] > bucket_bytes)) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(k);
    filled += grad_bytes[k];
  }
  return buckets;
}

}  // namespace reef
