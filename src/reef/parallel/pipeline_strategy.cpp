// Implementation of PipelineStrategy (parallel/strategies.h): 1F1B pipeline stages, with
// tensor parallelism inside the stages and data parallelism over stage replicas.
#include <fmt/format.h>

#include "reef/base/log.h"
#include "reef/parallel/strategies.h"

namespace reef {

PipelineStrategy::PipelineStrategy(CausalLM model, const Config& cfg,
                                   std::shared_ptr<ProcessGroup> world, Mesh mesh)
    : Strategy(std::move(model), cfg, std::move(world), mesh) {
  pipeline_ = std::make_unique<Pipeline>(model_, mesh_, world_);  // keeps this rank's stage
  std::shared_ptr<ProcessGroup> dp_pg = pipeline_->dp_group();
  std::string split;
  for (const auto& r : split_layers(model_->config().n_layers, mesh_.pp))
    split += fmt::format("{}[{}, {})", split.empty() ? "" : " ", r.begin, r.end);
  log_info("pipeline: {} stages, decoder layers {}; 1F1B over {} micro-batches per step", mesh_.pp,
           split, cfg_.train.grad_accum);
  if (mesh_.dp > 1) broadcast_module_from_rank0(*model_, *dp_pg);  // identical initial weights
  if (mesh_.tp > 1) {  // then each stage's tensors are split over its tp group
    tp_group_ = make_tp_group(mesh_, world_);
    tp_ = std::make_unique<TensorParallel>(model_, tp_group_, cfg_.parallel.sequence_parallel);
    TensorParallel* tp = tp_.get();
    pipeline_->set_tensor_parallel(
        [tp](const std::string& name) { return tp->shard_dim(name) >= 0; }, tp_group_,
        tp->sequence_parallel() ? mesh_.tp : 1);
  }
  NamedParams params;
  std::vector<torch::Tensor> trainable;
  for (const auto& item : model_->named_parameters(true)) {
    params.emplace_back(item.key(), item.value());
    if (item.value().requires_grad()) trainable.push_back(item.value());
  }
  optimizer_ = std::make_unique<Optimizer>(params, cfg_.optim,
                                           mesh_.zero >= 1 && mesh_.dp > 1 ? dp_pg : nullptr);
  if (mesh_.dp > 1)
    grad_sync_ = std::make_unique<GradientSync>(trainable, dp_pg, cfg_.parallel.bucket_mb);
}

void PipelineStrategy::forward_backward(int64_t n, int64_t seq_len, const BatchFn& batch,
                                        const LossFn& loss) {
  // The 1F1B schedule over this step's micro-batches (the dp sync included).
  pipeline_->train_step(
      n, shard_.micro_batch_size, seq_len, [&](int64_t m) { return batch(m).input_ids; },
      [&](const torch::Tensor& logits, int64_t m) {
        ModelOutputs o;
        o.logits = logits;
        o.tp = tp_.get();
        return loss(o, m);
      },
      grad_sync_.get(), [this](const std::function<void()>& f) { forward_scope(f); });
}

void PipelineStrategy::forward_only(const std::vector<int64_t>& rows, int64_t seq_len,
                                    const BatchFn& batch, const OutputsFn& read) {
  pipeline_->forward_only(
      rows, seq_len, [&](int64_t k) { return batch(k).input_ids; },
      [&](const torch::Tensor& logits, int64_t k) {
        ModelOutputs o;
        o.logits = logits;
        o.tp = tp_.get();
        read(o, k);
        return torch::Tensor();
      },
      [this](const std::function<void()>& f) { forward_scope(f); });
}

double PipelineStrategy::finish_gradients(double max_norm) {
  if (tp_) tp_->reduce_partial_gradients();  // sequence-parallel norms, Qwen3's q/k norms
  return pipeline_->clip_grad_norm(max_norm);
}

std::vector<ShardedParam> PipelineStrategy::sharded_params() const {
  std::vector<ShardedParam> out = tensor_parallel_params(model_, mesh_, rank(), tp_.get());
  // A tied copy of the token embedding on the last stage is written by the first.
  for (auto& p : out) p.write = pipeline_->owns(p.name);
  return out;
}

Consolidated PipelineStrategy::consolidate(bool with_optimizer) {
  // Every rank sends its stage to rank 0, which writes the whole checkpoint (tp x pp refuses
  // this layout in validate_config).
  Consolidated c;
  if (with_optimizer) {
    optimizer_->gather_state();  // ZeRO: every rank takes part
    c.optimizer_state = optimizer_->state_tensors(&c.optimizer_step);
  }
  c.model = pipeline_->gather_to_rank0(&c.optimizer_state);  // empty: weights only
  if (!c.model) c.optimizer_state.clear();
  c.release = [this] { optimizer_->release_gathered_state(); };
  return c;
}

}  // namespace reef
