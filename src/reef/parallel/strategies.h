// The layouts behind parallel/strategy.h (built by parallelize(); nothing else names them).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "reef/parallel/data_parallel.h"
#include "reef/parallel/fsdp.h"
#include "reef/parallel/pipeline.h"
#include "reef/parallel/strategy.h"
#include "reef/parallel/tensor_parallel.h"

namespace reef {

// One process, DDP (bucketed all-reduce overlapped with backward), ZeRO-1 (the optimizer's
// state sharded over dp), tensor parallelism (+ sequence parallelism) and dp x tp: the
// micro-batches run one after the other on a model every dp rank holds the same.
class ReplicatedStrategy : public Strategy {
 public:
  ReplicatedStrategy(CausalLM model, const Config& cfg, std::shared_ptr<ProcessGroup> world,
                     Mesh mesh, NamedParams trainable);
  void forward_backward(int64_t n, int64_t seq_len, const BatchFn& batch,
                        const LossFn& loss) override;
  void forward_only(const std::vector<int64_t>& rows, int64_t seq_len, const BatchFn& batch,
                    const OutputsFn& read) override;
  double finish_gradients(double max_norm) override;
  std::vector<ShardedParam> sharded_params() const override;
  Consolidated consolidate(bool with_optimizer) override;
  CollectiveBytes bytes() const override;
  bool reduce_scatters() const override { return tp_ && tp_->sequence_parallel(); }

 private:
  MeshGroups groups_;
  std::unique_ptr<TensorParallel> tp_;  // parallel.tp > 1
  std::unique_ptr<GradientSync> grad_sync_;
};

// ZeRO-3 / FSDP over the data-parallel ranks: parameters, gradients and AdamW state sharded.
class FsdpStrategy : public Strategy {
 public:
  FsdpStrategy(CausalLM model, const Config& cfg, std::shared_ptr<ProcessGroup> world, Mesh mesh);
  void forward_backward(int64_t n, int64_t seq_len, const BatchFn& batch,
                        const LossFn& loss) override;
  void forward_only(const std::vector<int64_t>& rows, int64_t seq_len, const BatchFn& batch,
                    const OutputsFn& read) override;
  double finish_gradients(double max_norm) override;
  std::vector<ShardedParam> sharded_params() const override { return {}; }
  std::vector<FlatPiece> flat_pieces() const override;
  Consolidated consolidate(bool with_optimizer) override;
  bool reduce_scatters() const override { return true; }

 private:
  std::unique_ptr<Fsdp> fsdp_;
};

// Pipeline stages (1F1B), optionally tensor-parallel inside each stage and data-parallel over
// stage replicas (ZeRO-1 included). Plain token rows only: no PEFT (validate_config refuses it),
// no packed rows or prompt-tuning vectors (supports_packed_rows).
class PipelineStrategy : public Strategy {
 public:
  PipelineStrategy(CausalLM model, const Config& cfg, std::shared_ptr<ProcessGroup> world,
                   Mesh mesh);
  void forward_backward(int64_t n, int64_t seq_len, const BatchFn& batch,
                        const LossFn& loss) override;
  void forward_only(const std::vector<int64_t>& rows, int64_t seq_len, const BatchFn& batch,
                    const OutputsFn& read) override;
  double finish_gradients(double max_norm) override;
  std::vector<ShardedParam> sharded_params() const override;
  Consolidated consolidate(bool with_optimizer) override;
  CollectiveBytes bytes() const override { return pipeline_->bytes(); }
  bool reduce_scatters() const override { return tp_ && tp_->sequence_parallel(); }
  bool supports_packed_rows() const override { return false; }

 private:
  std::unique_ptr<Pipeline> pipeline_;
  std::shared_ptr<ProcessGroup> tp_group_;
  std::unique_ptr<TensorParallel> tp_;
  std::unique_ptr<GradientSync> grad_sync_;
};

// Tensor-parallel placement of the rank's parameters (shared by the replicated and pipeline
// layouts): split ones are "tp-slice" boxes spread over the dp replicas, replicated ones over
// dp x tp; `stage_replicas` names the tag of the rest.
std::vector<ShardedParam> tensor_parallel_params(const CausalLM& model, const Mesh& mesh, int rank,
                                                 const TensorParallel* tp);

}  // namespace reef
