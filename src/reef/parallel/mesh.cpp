// Implementation of parallel/mesh.h.
#include "reef/parallel/mesh.h"

#include "reef/base/error.h"

namespace reef {

Mesh resolve_mesh(const ParallelConfig& p, int world_size) {
  if (p.pp > 1) usage_error("parallel.pp={}: pipeline parallelism is not supported yet; use parallel.pp=1", p.pp);
  Mesh m;
  m.tp = static_cast<int>(p.tp);
  m.pp = static_cast<int>(p.pp);
  m.zero = static_cast<int>(p.zero);
  const int64_t model_ranks = p.tp * p.pp;
  if (p.dp == 0) {
    if (world_size % model_ranks != 0)
      usage_error("the world size {} is not a multiple of parallel.tp={} x parallel.pp={}", world_size, p.tp, p.pp);
    m.dp = static_cast<int>(world_size / model_ranks);
  } else {
    m.dp = static_cast<int>(p.dp);
  }
  if (m.world_size() != world_size)
    usage_error("parallel.dp={} x tp={} x pp={} = {} ranks, but the run has {} (reef launch "
                "--nproc-per-node x --nnodes, or WORLD_SIZE); set parallel.dp=0 to take the world size",
                m.dp, m.tp, m.pp, m.world_size(), world_size);
  return m;
}

std::vector<int> tp_group_ranks(const Mesh& m, int rank) {
  std::vector<int> out;
  for (int t = 0; t < m.tp; ++t) out.push_back(dp_rank_of(m, rank) * m.tp + t);
  return out;
}

std::vector<int> dp_group_ranks(const Mesh& m, int rank) {
  std::vector<int> out;
  for (int d = 0; d < m.dp; ++d) out.push_back(d * m.tp + tp_rank_of(m, rank));
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
    usage_error("the global batch (train.micro_batch_size={} x train.grad_accum={}) cannot be split "
                "evenly over {} data-parallel ranks: make train.grad_accum or "
                "train.micro_batch_size a multiple of {}",
                micro_batch_size, grad_accum, dp, dp);
  }
  s.first = static_cast<int64_t>(dp_rank) * (s.global_batch / dp);
  return s;
}

std::vector<std::vector<size_t>> plan_buckets(const std::vector<int64_t>& grad_bytes, int64_t bucket_bytes) {
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
