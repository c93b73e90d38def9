// The device mesh of a run and how it splits the work: `parallel: {dp, tp, pp, zero}` resolved
// against the world size, each data-parallel rank's share of the global batch, and the
// gradient buckets of the all-reduce. Pure functions: unit-tested without processes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reef/config/config.h"

namespace reef {

struct Mesh {
  int dp = 1, tp = 1, pp = 1;
  int zero = 0;
  int world_size() const { return dp * tp * pp; }
};

// parallel.dp=0 takes world / (tp * pp). Usage errors (naming the keys) when pp is below 1 or
// dp * tp * pp differs from the world size.
Mesh resolve_mesh(const ParallelConfig& p, int world_size);

// Where a rank sits in the mesh. Ranks are laid out as Megatron's: tensor-parallel fastest, then
// data-parallel, then pipeline stage: rank = (pp_stage * dp + dp_rank) * tp + tp_rank. So a
// tensor-parallel group is tp consecutive ranks (on one node, where the bandwidth is), and the
// ranks of one pipeline stage are consecutive.
struct MeshCoord {
  int dp_rank = 0, pp_stage = 0, tp_rank = 0;
};
MeshCoord mesh_coord(const Mesh& m, int rank);
int mesh_rank(const Mesh& m, int dp_rank, int pp_stage, int tp_rank = 0);
inline int tp_rank_of(const Mesh& m, int rank) { return mesh_coord(m, rank).tp_rank; }
inline int dp_rank_of(const Mesh& m, int rank) { return mesh_coord(m, rank).dp_rank; }
// The global ranks of `rank`'s tensor-parallel group (same dp rank and stage) and data-parallel
// group (same tp rank and stage), ascending.
std::vector<int> tp_group_ranks(const Mesh& m, int rank);
std::vector<int> dp_group_ranks(const Mesh& m, int rank);
// The name of `rank`'s data-parallel sub-group (its store prefix): "dp.s<stage>.t<tp_rank>".
std::string dp_group_name(const Mesh& m, int rank);

// Decoder layers [begin, end) of each of `pp` pipeline stages: balanced, the first n_layers % pp
// stages one layer more (the last stage also runs the LM head). A usage error naming
// parallel.pp when a stage would get no layer.
struct LayerRange {
  int64_t begin = 0, end = 0;
};
std::vector<LayerRange> split_layers(int64_t n_layers, int pp);

// One data-parallel rank's share of an optimizer step. The global batch is the config's
// micro_batch_size * grad_accum whatever the world size: each rank takes a contiguous 1/dp of
// the step's samples, as grad_accum/dp micro-batches of micro_batch_size when dp divides
// grad_accum, otherwise grad_accum micro-batches of micro_batch_size/dp.
struct BatchShard {
  int64_t micro_batch_size = 0;  // sequences per forward/backward on this rank
  int64_t accum_steps = 0;       // micro-batches per optimizer step on this rank
  int64_t first = 0;             // offset of this rank's first sample within the step's samples
  int64_t global_batch = 0;      // samples per optimizer step over all ranks
};
BatchShard shard_global_batch(int64_t micro_batch_size, int64_t grad_accum, int dp, int dp_rank);

// Groups parameters (given by their gradient sizes in bytes, in registration order) into
// all-reduce buckets of about `bucket_bytes`, in reverse order (the order backward produces
// gradients), each bucket a list of parameter indices; a parameter larger than a bucket gets
// one of its own. Every index appears exactly once.
std::vector<std::vector<size_t>> plan_buckets(const std::vector<int64_t>& grad_bytes,
                                              int64_t bucket_bytes);

}  // namespace reef
