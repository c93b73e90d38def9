// Implementation of parallel/tensor_parallel.h.
#include "reef/parallel/tensor_parallel.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

#include "reef/base/error.h"
#include "reef/base/strings.h"
#include "reef/models/family.h"
#include "reef/nn/attention.h"
#include "reef/nn/init.h"
#include "reef/nn/mlp.h"

namespace reef {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The group rides in the autograd context as an integer: the TensorParallel that installed the
// operators owns it and outlives every graph built through them.
int64_t as_int(ProcessGroup& pg) { return reinterpret_cast<int64_t>(&pg); }
ProcessGroup& group_of(AutogradContext* ctx) {
  return *reinterpret_cast<ProcessGroup*>(ctx->saved_data["pg"].toInt());
}

torch::Tensor all_reduced(const torch::Tensor& x, ProcessGroup& pg) {
  auto y = x.clone(at::MemoryFormat::Contiguous);
  pg.all_reduce_sum(y);
  return y;
}

// Every rank's x, concatenated along `dim` in rank order (all_gather concatenates flat
// buffers, that is along dim 0: `dim` moves to the front and back).
torch::Tensor all_gather_along(const torch::Tensor& x, int64_t dim, ProcessGroup& pg) {
  auto front = x.movedim(dim, 0).contiguous();
  auto sizes = front.sizes().vec();
  sizes[0] *= pg.size();
  auto out = torch::empty(sizes, front.options());
  pg.all_gather(out.view({-1}), front.view({-1}));
  return out.movedim(0, dim).contiguous();
}

// Sequence parallelism on [B, T, ...] activations. The collectives concatenate flat buffers in
// rank order, that is [n, B, T/n, ...]: a rank's slice [B, T/n, ...] is already one contiguous
// chunk, so each direction costs one copy (the transpose between [n, B, ..] and [B, n, ..]).
torch::Tensor all_gather_sequence(const torch::Tensor& x, ProcessGroup& pg) {
  auto in = x.contiguous();
  auto sizes = in.sizes().vec();  // [B, T/n, ...]
  std::vector<int64_t> chunks = sizes;
  chunks.insert(chunks.begin(), pg.size());  // [n, B, T/n, ...]
  auto buf = torch::empty(chunks, in.options());
  pg.all_gather(buf.view({-1}), in.view({-1}));
  sizes[1] *= pg.size();
  return buf.transpose(0, 1).reshape(sizes);  // [B, n, T/n, ...] -> [B, T, ...]
}

// Chunk `rank` (along dim 1) of the sum over ranks of x.
torch::Tensor reduce_scatter_sequence_sum(const torch::Tensor& x, ProcessGroup& pg) {
  const int64_t n = pg.size();
  if (x.size(1) % n != 0)
    fail(
        "sequence parallelism: a sequence of {} tokens does not split over {} tensor-parallel "
        "ranks; "
        "make data.seq_len divisible by parallel.tp",
        x.size(1), n);
  auto sizes = x.sizes().vec();  // [B, T, ...]
  sizes[1] /= n;
  std::vector<int64_t> split = sizes;
  split.insert(split.begin() + 1, n);                       // [B, n, T/n, ...]
  auto in = x.reshape(split).transpose(0, 1).contiguous();  // [n, B, T/n, ...]: rank r's chunk r
  auto out = torch::empty(sizes, in.options());
  pg.reduce_scatter_sum(out.view({-1}), in.view({-1}));
  return out;
}

struct GatherSequence : torch::autograd::Function<GatherSequence> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t pg) {
    ctx->saved_data["pg"] = pg;
    return all_gather_sequence(x, *reinterpret_cast<ProcessGroup*>(pg));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {reduce_scatter_sequence_sum(grads[0], group_of(ctx)), torch::Tensor()};
  }
};

struct ReduceScatterSequence : torch::autograd::Function<ReduceScatterSequence> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t pg) {
    ctx->saved_data["pg"] = pg;
    return reduce_scatter_sequence_sum(x, *reinterpret_cast<ProcessGroup*>(pg));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {all_gather_sequence(grads[0], group_of(ctx)), torch::Tensor()};
  }
};

struct CopyToTp : torch::autograd::Function<CopyToTp> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t pg) {
    ctx->saved_data["pg"] = pg;
    return x;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {all_reduced(grads[0], group_of(ctx)), torch::Tensor()};
  }
};

struct ReduceFromTp : torch::autograd::Function<ReduceFromTp> {
  static torch::Tensor forward(AutogradContext*, const torch::Tensor& x, int64_t pg) {
    return all_reduced(x, *reinterpret_cast<ProcessGroup*>(pg));
  }
  static variable_list backward(AutogradContext*, variable_list grads) {
    return {grads[0], torch::Tensor()};
  }
};

// Megatron's vocab-parallel cross-entropy: the max, the sum of exponentials and the target's
// logit are reduced over the ranks as [N] vectors; the gradient is softmax - one_hot on each
// rank's own columns.
struct VocabParallelCrossEntropy : torch::autograd::Function<VocabParallelCrossEntropy> {
  // logits [N, Vl], targets [N] -> [N]
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& targets, int64_t vocab_start, int64_t pg_int) {
    torch::NoGradGuard ng;
    auto& pg = *reinterpret_cast<ProcessGroup*>(pg_int);
    const int64_t n = logits.size(0), vl = logits.size(1);
    auto x = logits.to(torch::kFloat).contiguous();
    // The global max per row (for a stable exp): every rank's local max, gathered.
    auto local_max = std::get<0>(x.max(1)).contiguous();
    auto maxes = torch::empty({pg.size() * n}, local_max.options());
    pg.all_gather(maxes, local_max);
    auto row_max = std::get<0>(maxes.view({pg.size(), n}).max(0));  // [N]
    auto shifted = x - row_max.unsqueeze(1);
    auto exp = shifted.exp();
    auto mine = (targets >= vocab_start) & (targets < vocab_start + vl);  // [N] bool
    auto local_t = (targets - vocab_start).masked_fill(~mine, 0);
    auto target_logit = shifted.gather(1, local_t.unsqueeze(1)).squeeze(1).masked_fill(~mine, 0.0);
    // One all-reduce for both sums.
    auto sums = torch::stack({exp.sum(1), target_logit});  // [2, N]
    pg.all_reduce_sum(sums);
    auto sum_exp = sums[0], tgt = sums[1];
    auto valid = targets >= 0;
    auto loss = (sum_exp.log() - tgt).masked_fill(~valid, 0.0);
    exp.div_(sum_exp.unsqueeze(1));  // softmax of this rank's columns
    ctx->save_for_backward({exp, local_t, mine, valid});
    ctx->saved_data["dtype"] = static_cast<int64_t>(logits.scalar_type());
    return loss;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto softmax = saved[0], local_t = saved[1], mine = saved[2], valid = saved[3];
    auto g = softmax.clone();
    g.scatter_add_(1, local_t.unsqueeze(1), -mine.to(g.scalar_type()).unsqueeze(1));
    g.mul_((grads[0].to(g.scalar_type()) * valid.to(g.scalar_type())).unsqueeze(1));
    const auto dtype = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {g.to(dtype), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Replaces parameter p's data by its slice `rank` of `parts` along `dim`, in place (the module
// members and the registered parameter stay the same tensor, as Module::to does).
void slice_param(torch::Tensor& p, int64_t dim, int rank, int parts) {
  if (!p.defined()) return;
  const int64_t n = p.size(dim) / parts;
  p.set_data(p.detach().narrow(dim, rank * n, n).clone());
}

// Tensor parallelism's token lookup, in the body's place: each rank holds a contiguous slice of
// the vocabulary (the same weight tensor the plain lookup had, sliced in place).
class VocabParallelEmbeddingImpl : public EmbeddingImpl {
 public:
  VocabParallelEmbeddingImpl(torch::Tensor weight, int64_t vocab_start,
                             std::shared_ptr<ProcessGroup> tp, bool sequence_parallel)
      : EmbeddingImpl(std::move(weight)),
        vocab_start_(vocab_start),
        tp_(std::move(tp)),
        sequence_parallel_(sequence_parallel) {}
  torch::Tensor forward(const torch::Tensor& ids) override {
    return vocab_parallel_embedding(ids, weight, vocab_start_, *tp_, sequence_parallel_);
  }

 private:
  int64_t vocab_start_;
  std::shared_ptr<ProcessGroup> tp_;  // held, so a sharded model stays usable on its own
  bool sequence_parallel_;
};

}  // namespace

std::shared_ptr<ProcessGroup> make_tp_group(const Mesh& mesh,
                                            const std::shared_ptr<ProcessGroup>& world) {
  if (mesh.tp == 1 || !world) return nullptr;
  if (mesh.tp == world->size()) return world;
  const MeshCoord c = mesh_coord(mesh, world->rank());
  return world->new_group(tp_group_ranks(mesh, world->rank()),
                          "tp.s" + std::to_string(c.pp_stage) + ".d" + std::to_string(c.dp_rank));
}

MeshGroups make_mesh_groups(const Mesh& mesh, const std::shared_ptr<ProcessGroup>& world) {
  MeshGroups g;
  if (!world || world->size() == 1) return g;
  const int rank = world->rank();
  if (mesh.pp == 1 && mesh.tp == 1) {
    g.dp = world;
    return g;
  }
  if (mesh.pp == 1 && mesh.dp == 1) {
    g.tp = world;
    return g;
  }
  // Each rank builds only the groups it belongs to; the names keep the groups apart in the store.
  g.tp = make_tp_group(mesh, world);
  if (mesh.dp > 1) g.dp = world->new_group(dp_group_ranks(mesh, rank), dp_group_name(mesh, rank));
  return g;
}

void check_tensor_parallel(const ModelConfig& c, int64_t tp) {
  if (tp <= 1) return;
  const ModelFamily* family = find_model_family(c.arch);
  const bool planned =
      family != nullptr && c.n_experts == 0 &&
      std::find(family->tp_archs.begin(), family->tp_archs.end(), c.arch) != family->tp_archs.end();
  if (!planned) {
    std::string archs;
    for (const ModelFamily* f : model_families())
      for (const auto& a : f->tp_archs) archs += (archs.empty() ? "" : ", ") + a;
    usage_error(
        "parallel.tp={}: tensor parallelism supports the dense archs whose family has a "
        "tensor-parallel plan ({}), not model.arch {}; use parallel.tp=1",
        tp, archs, c.arch);
  }
  auto divisible = [&](const char* key, int64_t v, const char* why) {
    if (v % tp != 0)
      usage_error(
          "parallel.tp={}: model.{}={} is not divisible by it ({}); choose parallel.tp "
          "dividing it",
          tp, key, v, why);
  };
  divisible("n_heads", c.n_heads, "each rank computes whole attention heads");
  divisible("n_kv_heads", c.n_kv_heads,
            "grouped-query attention: each rank needs whole key/value heads");
  divisible("intermediate_size", c.intermediate_size, "the MLP is split by columns");
  if (c.vocab_size % tp != 0)
    usage_error(
        "parallel.tp={}: model.vocab_size={} is not divisible by it (the embedding and LM "
        "head are split by vocabulary; the vocabulary is not padded, so checkpoints keep "
        "their shape); set model.vocab_size={} (a multiple of {}, at least the tokenizer's) "
        "or choose another parallel.tp",
        tp, c.vocab_size, (c.vocab_size + tp - 1) / tp * tp, tp);
}

torch::Tensor copy_to_tp(const torch::Tensor& x, ProcessGroup& tp) {
  return CopyToTp::apply(x, as_int(tp));
}

torch::Tensor reduce_from_tp(const torch::Tensor& x, ProcessGroup& tp) {
  return ReduceFromTp::apply(x, as_int(tp));
}

torch::Tensor gather_sequence(const torch::Tensor& x, ProcessGroup& tp) {
  return GatherSequence::apply(x, as_int(tp));
}

torch::Tensor reduce_scatter_sequence(const torch::Tensor& x, ProcessGroup& tp) {
  return ReduceScatterSequence::apply(x, as_int(tp));
}

torch::Tensor vocab_parallel_embedding(const torch::Tensor& ids, const torch::Tensor& weight,
                                       int64_t vocab_start, ProcessGroup& tp,
                                       bool sequence_parallel) {
  auto mine = (ids >= vocab_start) & (ids < vocab_start + weight.size(0));  // [B, T]
  auto local = (ids - vocab_start).masked_fill(~mine, 0);
  auto e = torch::embedding(weight, local).masked_fill(~mine.unsqueeze(-1), 0.0);  // [B, T, C]
  return sequence_parallel ? reduce_scatter_sequence(e, tp) : reduce_from_tp(e, tp);
}

torch::Tensor vocab_parallel_cross_entropy(const torch::Tensor& logits,
                                           const torch::Tensor& targets, int64_t vocab_start,
                                           ProcessGroup& tp) {
  return VocabParallelCrossEntropy::apply(logits, targets, vocab_start, as_int(tp));
}

TensorParallel::TensorParallel(CausalLM model, std::shared_ptr<ProcessGroup> tp,
                               bool sequence_parallel)
    : model_(std::move(model)), tp_(std::move(tp)), sequence_parallel_(sequence_parallel) {
  const ModelConfig& cfg = model_->config();
  const int n = tp_->size(), r = tp_->rank();
  check_tensor_parallel(cfg, n);
  for (const auto& item : model_->named_modules()) {
    if (auto* lin = item.value()->as<LinearImpl>(); lin && lin->has_lora())
      usage_error("parallel.tp={}: LoRA layers ({}) are not supported with tensor parallelism", n,
                  item.key());
  }
  // The hooks hold the group, so a sharded model stays usable on its own.
  std::shared_ptr<ProcessGroup> pg = tp_;
  // Into a column-parallel layer (f) and out of a row-parallel one (g).
  std::function<torch::Tensor(const torch::Tensor&)> f, g;
  if (sequence_parallel_) {
    f = [pg](const torch::Tensor& x) { return gather_sequence(x, *pg); };
    g = [pg](const torch::Tensor& x) { return reduce_scatter_sequence(x, *pg); };
  } else {
    f = [pg](const torch::Tensor& x) { return copy_to_tp(x, *pg); };
    g = [pg](const torch::Tensor& x) { return reduce_from_tp(x, *pg); };
  }
  for (const auto& item : model_->named_parameters(true)) dims_[item.key()] = -1;

  const int64_t vl = cfg.vocab_size / n;
  vocab_start_ = r * vl;
  auto column = [&](LinearImpl& l, const std::string& prefix) {
    slice_param(l.weight, 0, r, n);
    slice_param(l.bias, 0, r, n);
    l.out_features /= n;
    dims_[prefix + ".weight"] = 0;
    if (l.bias.defined()) dims_[prefix + ".bias"] = 0;
  };
  auto row = [&](LinearImpl& l, const std::string& prefix) {
    slice_param(l.weight, 1, r, n);  // the bias stays whole: added once, after the all-reduce
    l.in_features /= n;
    l.matmul_hook = g;
    dims_[prefix + ".weight"] = 1;
  };
  auto linear = [&](torch::nn::Module& m, const std::string& name) -> LinearImpl& {
    auto* l = m.as<LinearImpl>();
    if (l == nullptr) fail("tensor parallel: the plan's linear {} is not a Linear", name);
    return *l;
  };
  // The family's plan (models/<family>/), applied to every module it names; a pipeline stage's
  // released modules are simply not there.
  const auto& plan = model_family(cfg.arch).tp_plan;
  for (const auto& item : model_->named_modules("", /*include_self=*/false)) {
    const std::string& name = item.key();
    const auto style = tp_style(plan, name);
    if (!style) continue;
    torch::nn::Module& m = *item.value();
    switch (*style) {
      case TpStyle::kColumn:
        column(linear(m, name), name);
        break;
      case TpStyle::kRow:
        row(linear(m, name), name);
        break;
      case TpStyle::kVocab:
        if (auto* emb = m.as<EmbeddingImpl>()) {
          slice_param(emb->weight, 0, r, n);
          dims_[name + ".weight"] = 0;
          // The body's lookup becomes the vocabulary-parallel one, over the same weight.
          std::shared_ptr<EmbeddingImpl> lookup = std::make_shared<VocabParallelEmbeddingImpl>(
              emb->weight, vocab_start_, pg, sequence_parallel_);
          model_->body().replace_tokens(Embedding(lookup));
        } else {
          column(linear(m, name), name);  // the LM head; tied: the embedding's slice
        }
        break;
      case TpStyle::kGatherInput:
        if (auto* h = dynamic_cast<InputHook*>(&m))
          h->input_hook = f;  // the LM head then produces this rank's vocabulary slice
        else
          fail("tensor parallel: {} takes no input hook", name);
        break;
      case TpStyle::kPartialGrad:
        for (auto& w : m.parameters()) partial_.push_back(w);
        break;
    }
  }
  if (sequence_parallel_) {
    // The norms and row-parallel biases see this rank's tokens only.
    partial_.clear();
    for (const auto& item : model_->named_parameters(true))
      if (dims_.at(item.key()) < 0) partial_.push_back(item.value());
  }
}

void TensorParallel::reduce_partial_gradients() {
  std::vector<torch::Tensor> grads;
  for (const auto& p : partial_)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return;
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> flat;
  for (const auto& g : grads) flat.push_back(g.reshape({-1}));
  auto buf = torch::cat(flat);
  tp_->all_reduce_sum(buf);
  int64_t offset = 0;
  for (auto& g : grads) {
    g.copy_(buf.narrow(0, offset, g.numel()).view_as(g));
    offset += g.numel();
  }
}

int64_t TensorParallel::shard_dim(const std::string& name) const {
  auto it = dims_.find(name);
  if (it == dims_.end()) fail("tensor parallel: no parameter named {} (internal error)", name);
  return it->second;
}

torch::Tensor TensorParallel::shard(const std::string& name, const torch::Tensor& full) const {
  const int64_t d = shard_dim(name);
  if (d < 0) return full;
  const int64_t n = full.size(d) / tp_->size();
  return full.narrow(d, tp_->rank() * n, n);
}

torch::Tensor TensorParallel::gather(const std::string& name, const torch::Tensor& local) {
  const int64_t d = shard_dim(name);
  if (d < 0) return local;
  torch::NoGradGuard ng;
  return all_gather_along(local.detach(), d, *tp_);
}

CausalLM TensorParallel::gather_model() {
  CausalLM full{nullptr};
  {
    SkipInitGuard skip;  // every parameter is overwritten below
    full = CausalLM(model_->config());
  }
  auto device = model_->parameters().front().device();
  full->to(device);
  torch::NoGradGuard ng;
  auto dst = full->named_parameters(true);
  for (const auto& item : model_->named_parameters(true))
    dst[item.key()].copy_(gather(item.key(), item.value()));
  return full;
}

void TensorParallel::load_full_model(CausalLM& full) {
  torch::NoGradGuard ng;
  auto src = full->named_parameters(true);
  for (auto& item : model_->named_parameters(true)) {
    const auto* t = src.find(item.key());
    if (!t)
      fail("tensor parallel: the full model has no parameter {} (internal error)", item.key());
    item.value().copy_(shard(item.key(), *t));
  }
}

const std::string& TensorParallel::owner_param(const std::string& state_name) const {
  for (const char* suffix : {".exp_avg_sq", ".exp_avg"}) {
    if (ends_with(state_name, suffix)) {
      auto it = dims_.find(state_name.substr(0, state_name.size() - std::string(suffix).size()));
      if (it != dims_.end()) return it->first;
    }
  }
  fail("tensor parallel: optimizer state {} belongs to no parameter", state_name);
}

std::vector<std::pair<std::string, torch::Tensor>> TensorParallel::gather_state(
    const std::vector<std::pair<std::string, torch::Tensor>>& local) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, t] : local) out.emplace_back(name, gather(owner_param(name), t));
  return out;
}

std::map<std::string, torch::Tensor> TensorParallel::shard_state(
    const std::map<std::string, torch::Tensor>& full) const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : full) out[name] = shard(owner_param(name), t).contiguous();
  return out;
}

torch::Tensor TensorParallel::token_losses(const torch::Tensor& logits,
                                           const torch::Tensor& targets) {
  auto per = vocab_parallel_cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                          targets.reshape({-1}), vocab_start_, *tp_);
  return per.view(targets.sizes());
}

torch::Tensor TensorParallel::loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  // torch's cross_entropy mean: over the targets that are not ignored (negative ids).
  auto count = (targets >= 0).sum().to(torch::kFloat);
  return token_losses(logits, targets).sum() / count;
}

double sum_of_squares(const std::vector<torch::Tensor>& norms) {
  return norms.empty() ? 0.0 : torch::stack(norms).to(torch::kDouble).pow(2).sum().item<double>();
}

double TensorParallel::clip_grad_norm(double max_norm) {
  std::vector<torch::Tensor> grads, sharded, replicated;
  for (const auto& item : model_->named_parameters(true)) {
    const auto& grad = item.value().grad();
    if (!grad.defined()) continue;
    grads.push_back(grad);
    (dims_.at(item.key()) >= 0 ? sharded : replicated)
        .push_back(grad.detach().to(torch::kFloat).norm(2));
  }
  auto t = torch::tensor({sum_of_squares(sharded)}, torch::kDouble);
  tp_->all_reduce_sum(t);
  const double total = std::sqrt(t.item<double>() + sum_of_squares(replicated));
  if (max_norm > 0 && total > max_norm) {
    const double scale = max_norm / (total + 1e-6);
    torch::NoGradGuard ng;
    for (auto& g : grads) g.mul_(scale);
  }
  return total;
}

}  // namespace reef
