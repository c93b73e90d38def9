// Implementation of parallel/strategy.h: the parts every layout shares (the forward of one
// micro-batch, autocast, the vocabulary-wide reductions, the default state of a replicated
// model) and parallelize(), which picks the layout.
#include "reef/parallel/strategy.h"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/custom_function.h>

#include <optional>

#include "reef/base/error.h"
#include "reef/nn/autocast.h"
#include "reef/nn/packing.h"
#include "reef/parallel/strategies.h"
#include "reef/parallel/tensor_parallel.h"

namespace reef {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Every rank's x [N...] stacked as [n, N...] for a computation every rank repeats identically
// (a reduction over the vocabulary's slices): the gradient of this rank's x is its own row.
struct GatherForReplicated : torch::autograd::Function<GatherForReplicated> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t pg_int) {
    auto& pg = *reinterpret_cast<ProcessGroup*>(pg_int);
    ctx->saved_data["rank"] = static_cast<int64_t>(pg.rank());
    auto in = x.contiguous();
    std::vector<int64_t> sizes = in.sizes().vec();
    sizes.insert(sizes.begin(), pg.size());
    auto out = torch::empty(sizes, in.options());
    pg.all_gather(out.view({-1}), in.view({-1}));
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {grads[0].select(0, ctx->saved_data["rank"].toInt()), torch::Tensor()};
  }
};

}  // namespace

namespace {

// x [N, ...] for the marked positions of `positions` [B, T] -> [B, T, ...], 0 elsewhere.
torch::Tensor spread(const torch::Tensor& x, const torch::Tensor& positions) {
  std::vector<int64_t> sizes = positions.sizes().vec();
  for (int64_t d = 1; d < x.dim(); ++d) sizes.push_back(x.size(d));
  return torch::zeros(sizes, x.options()).index_put({positions}, x);
}

}  // namespace

torch::Tensor ModelOutputs::token_cross_entropy(const torch::Tensor& targets,
                                                double temperature) const {
  const torch::Tensor z = temperature == 1.0 ? logits : logits / temperature;
  if (tp) return tp->token_losses(z, targets);
  const int64_t V = z.size(-1);
  namespace F = torch::nn::functional;
  const auto t = positions.defined() ? targets.index({positions}) : targets.reshape({-1});
  auto ce = F::cross_entropy(
      z.reshape({-1, V}).to(torch::kFloat), t,
      F::CrossEntropyFuncOptions().ignore_index(kIgnoreTarget).reduction(torch::kNone));
  return positions.defined() ? spread(ce, positions) : ce.view(targets.sizes());
}

torch::Tensor ModelOutputs::token_entropy(double temperature) const {
  if (tp) fail("token entropy under tensor parallelism is not supported (internal error)");
  auto logp = torch::log_softmax(logits.to(torch::kFloat) / temperature, -1);
  auto h = -(logp.exp() * logp).sum(-1);  // [N] or [B, T]
  return positions.defined() ? spread(h, positions) : h;
}

torch::Tensor ModelOutputs::cross_entropy_sum(const torch::Tensor& targets) const {
  if (tp) return tp->token_losses(logits, targets).sum();
  if (positions.defined()) return causal_lm_loss_sum(logits, targets.index({positions}));
  return causal_lm_loss_sum(logits, targets);
}

torch::Tensor ModelOutputs::token_logsumexp() const {
  auto local = torch::logsumexp(logits.to(torch::kFloat), -1);  // [B, T] over this rank's slice
  if (positions.defined()) return spread(local, positions);
  if (!tp) return local;
  auto all = GatherForReplicated::apply(local, reinterpret_cast<int64_t>(&tp->group()));
  return torch::logsumexp(all, 0);
}

Strategy::Strategy(CausalLM model, const Config& cfg, std::shared_ptr<ProcessGroup> world,
                   Mesh mesh)
    : model_(std::move(model)),
      cfg_(cfg),
      device_type_(torch::Device(cfg.run.device).type()),
      world_(std::move(world)),
      mesh_(mesh) {
  shard_ = shard_global_batch(cfg_.train.micro_batch_size, cfg_.train.grad_accum, mesh_.dp,
                              mesh_coord(mesh_, rank()).dp_rank);
}

Strategy::~Strategy() = default;

std::string Strategy::describe() const {
  return fmt::format("dp={} tp={} pp={} zero={}{}", mesh_.dp, mesh_.tp, mesh_.pp, mesh_.zero,
                     cfg_.parallel.sequence_parallel && mesh_.tp > 1 ? " sequence_parallel" : "");
}

void Strategy::forward_scope(const std::function<void()>& f) const {
  AutocastScope ac(cfg_.train.precision == "bf16", device_type_);
  f();
}

ModelOutputs Strategy::forward(const MicroBatch& b, TensorParallel* tp) {
  const int64_t P = b.prefix_embeds.defined() ? b.prefix_embeds.size(0) : 0;
  std::optional<PackedSequences> packed;
  if (b.segment_ids.defined()) {
    packed.emplace(b.position_ids, b.segment_ids);
    if (P > 0) *packed = packed->with_prefix(P);  // the virtual tokens join each row's first sample
  }
  CausalLMImpl::TrainOutput out;
  // logits [B, P + T, V] (+ aux for MoE)
  // Logits at the loss's positions only, where the whole vocabulary is on this rank (a tensor-
  // parallel head holds a slice, and sequence parallelism splits the positions).
  const torch::Tensor selected = tp ? torch::Tensor() : b.head_positions;
  forward_scope([&] {
    out =
        model_->forward_train(b.input_ids, packed ? &*packed : nullptr, b.prefix_embeds, selected);
  });
  ModelOutputs o;
  if (selected.defined()) {
    o.logits = out.logits;
    o.positions = selected;
  } else {
    o.logits = P > 0 ? out.logits.narrow(1, P, out.logits.size(1) - P) : out.logits;
  }
  o.aux_loss = out.aux_loss;
  o.tp = tp;
  return o;
}

std::vector<ShardedParam> Strategy::sharded_params() const {
  // Every rank holds every whole tensor; the writing is spread over all of them.
  std::vector<ShardedParam> out;
  for (const auto& item : model_->named_parameters(true)) {
    ShardedParam p;
    p.name = item.key();
    p.local = item.value();
    p.global_shape = p.local.sizes().vec();
    p.replica_index = rank();
    p.n_replicas = world_size();
    out.push_back(std::move(p));
  }
  return out;
}

Consolidated Strategy::consolidate(bool with_optimizer) {
  Consolidated c;
  if (with_optimizer) optimizer_->gather_state();  // ZeRO: every rank takes part
  if (rank() == 0) {
    c.model = model_;
    if (with_optimizer) c.optimizer_state = optimizer_->state_tensors(&c.optimizer_step);
  }
  c.release = [this] { optimizer_->release_gathered_state(); };
  return c;
}

CollectiveBytes Strategy::bytes() const { return world_ ? world_->bytes() : CollectiveBytes(); }

void Strategy::all_reduce_sum(torch::Tensor& t) const {
  if (world_) world_->all_reduce_sum(t);
}

std::unique_ptr<Strategy> parallelize(CausalLM model, const Config& cfg,
                                      std::shared_ptr<ProcessGroup> world, NamedParams trainable) {
  model->to(torch::Device(cfg.run.device));
  const Mesh mesh = resolve_mesh(cfg.parallel, world ? world->size() : 1);
  // validate_config has refused what does not combine: PEFT with tp, pp or zero=3, zero=3 with
  // tp or pp, a consolidated layout for tp x pp.
  if (mesh.pp > 1)
    return std::make_unique<PipelineStrategy>(std::move(model), cfg, std::move(world), mesh);
  if (mesh.zero == 3 && mesh.dp > 1)
    return std::make_unique<FsdpStrategy>(std::move(model), cfg, std::move(world), mesh);
  return std::make_unique<ReplicatedStrategy>(std::move(model), cfg, std::move(world), mesh,
                                              std::move(trainable));
}

}  // namespace reef
