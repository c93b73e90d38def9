// Implementation of parallel/pipeline.h.
#include "reef/parallel/pipeline.h"

#include <cmath>
#include <map>
#include <unordered_map>

#include "reef/base/error.h"
#include "reef/nn/init.h"
#include "reef/parallel/pipeline_schedule.h"
#include "reef/parallel/tensor_parallel.h"

namespace reef {
namespace {

// Message tags: each kind of traffic between two ranks matches in order within its tag.
constexpr int kTagActivation = 1, kTagGradient = 2, kTagTied = 3, kTagGather = 4;

}  // namespace

Pipeline::Pipeline(CausalLM model, const Mesh& mesh, std::shared_ptr<ProcessGroup> world)
    : model_(std::move(model)), mesh_(mesh), world_(std::move(world)) {
  if (!world_ || world_->size() != mesh_.world_size())
    fail("pipeline: a process group of {} ranks is needed (internal error)", mesh_.world_size());
  const ModelConfig& cfg = model_->config();
  if (model_->uses_aux_loss())
    usage_error(
        "parallel.pp={}: the MoE router aux loss (model.output_router_logits=true) is not "
        "supported with pipeline parallelism yet; set model.output_router_logits=false or "
        "parallel.pp=1",
        mesh_.pp);
  const auto ranges = split_layers(cfg.n_layers, mesh_.pp);
  const MeshCoord me = mesh_coord(mesh_, world_->rank());
  stage_ = me.pp_stage;
  dp_rank_ = me.dp_rank;
  tp_rank_ = me.tp_rank;
  layers_ = ranges[static_cast<size_t>(stage_)];

  // Which stage owns each parameter of the whole model: a decoder layer's go with the layer,
  // the embeddings with the first stage, everything else (final norm, LM head) with the last.
  std::unordered_map<const void*, int> owner;
  for (int s = 0; s < mesh_.pp; ++s)
    for (int64_t i = ranges[s].begin; i < ranges[s].end; ++i)
      for (auto& p : model_->body().layer_module(i)->parameters())
        owner[p.unsafeGetTensorImpl()] = s;
  for (auto& p : model_->body().embedding_weights()) owner[p.unsafeGetTensorImpl()] = 0;
  for (const auto& item : model_->named_parameters(true)) {
    auto it = owner.find(item.value().unsafeGetTensorImpl());
    all_params_.push_back({item.key(), item.value().sizes().vec(),
                           it == owner.end() ? mesh_.pp - 1 : it->second,
                           item.value().scalar_type()});
  }

  model_->keep_only(layers_.begin, layers_.end, is_first(), is_last());
  if (is_last() && ties_lm_head(cfg)) tied_copy_ = model_->lm_head_weight();
  if (mesh_.dp > 1)
    dp_group_ = world_->new_group(dp_group_ranks(mesh_, world_->rank()),
                                  dp_group_name(mesh_, world_->rank()));
}

void Pipeline::set_tensor_parallel(std::function<bool(const std::string&)> is_sharded,
                                   std::shared_ptr<ProcessGroup> tp_group,
                                   int64_t sequence_shards) {
  is_sharded_ = std::move(is_sharded);
  tp_group_ = std::move(tp_group);
  sequence_shards_ = sequence_shards;
}

bool Pipeline::owns(const std::string& name) const {
  for (const ParamInfo& info : all_params_)
    if (info.name == name) return info.stage == stage_;
  return false;
}

CollectiveBytes Pipeline::bytes() const {
  CollectiveBytes b = world_->bytes();
  for (const auto& g : {dp_group_, tp_group_})
    if (g && g != world_) b += g->bytes();
  return b;
}

void Pipeline::wait_sends() {
  for (auto& s : sends_) s.work->wait();
  sends_.clear();
}

void Pipeline::train_step(int64_t micro_batches, int64_t rows, int64_t seq_len,
                          const InputFn& inputs, const LossFn& loss, GradientSync* grad_sync,
                          const ForwardScope& scope) {
  const int64_t C = model_->config().hidden_size;
  const auto act =
      torch::TensorOptions().dtype(torch::kFloat).device(model_->parameters().front().device());
  struct Live {
    torch::Tensor input;   // received activations (a leaf whose .grad goes back); first stage: none
    torch::Tensor output;  // sent activations, or the last stage's loss
    torch::Tensor grad;    // received gradient of output
  };
  std::vector<Live> live(static_cast<size_t>(micro_batches));
  for (const PipeOp& op : one_f_one_b(mesh_.pp, stage_, static_cast<int>(micro_batches))) {
    Live& l = live[static_cast<size_t>(op.micro)];
    switch (op.kind) {
      case PipeOpKind::kRecvForward:
        l.input = torch::empty({rows, seq_len / sequence_shards_, C}, act);
        world_->recv(l.input, peer(stage_ - 1), kTagActivation);
        l.input.requires_grad_(true);
        break;
      case PipeOpKind::kForward: {
        torch::Tensor out;
        scope([&] {
          auto h = is_first() ? model_->embed(inputs(op.micro)) : l.input;  // [B, T, C]
          h = model_->run_layers(h, layers_.begin, layers_.end, seq_len);
          out = is_last() ? model_->head(h) : h.to(torch::kFloat).contiguous();
        });
        l.output = is_last() ? loss(out, op.micro) : out;
        break;
      }
      case PipeOpKind::kSendForward: {
        auto buf = l.output.detach();
        sends_.push_back({buf, world_->send_async(buf, peer(stage_ + 1), kTagActivation)});
        break;
      }
      case PipeOpKind::kRecvBackward:
        l.grad = torch::empty({rows, seq_len / sequence_shards_, C}, act);
        world_->recv(l.grad, peer(stage_ + 1), kTagGradient);
        break;
      case PipeOpKind::kBackward:
        if (grad_sync)
          grad_sync->set_sync(op.micro == micro_batches - 1);  // the step's last backward
        if (is_last())
          l.output.backward();
        else
          torch::autograd::backward({l.output}, {l.grad});
        break;
      case PipeOpKind::kSendBackward: {
        auto buf = l.input.grad().contiguous();
        sends_.push_back({buf, world_->send_async(buf, peer(stage_ - 1), kTagGradient)});
        break;
      }
    }
    if (op.kind == (is_first() ? PipeOpKind::kBackward : PipeOpKind::kSendBackward))
      l = Live();  // done
  }
  wait_sends();
  if (grad_sync) grad_sync->finish();
  sum_tied_gradients();
}

void Pipeline::forward_only(const std::vector<int64_t>& rows, int64_t seq_len,
                            const InputFn& inputs, const LossFn& loss, const ForwardScope& scope) {
  torch::NoGradGuard ng;
  const int64_t C = model_->config().hidden_size;
  const auto act =
      torch::TensorOptions().dtype(torch::kFloat).device(model_->parameters().front().device());
  for (int64_t m = 0; m < static_cast<int64_t>(rows.size()); ++m) {
    torch::Tensor h;
    if (!is_first()) {
      h = torch::empty({rows[m], seq_len / sequence_shards_, C}, act);
      world_->recv(h, peer(stage_ - 1), kTagActivation);
    }
    torch::Tensor out;
    scope([&] {
      if (is_first()) h = model_->embed(inputs(m));
      h = model_->run_layers(h, layers_.begin, layers_.end, seq_len);
      out = is_last() ? model_->head(h) : h.to(torch::kFloat).contiguous();
    });
    if (is_last())
      loss(out, m);
    else
      sends_.push_back({out, world_->send_async(out, peer(stage_ + 1), kTagActivation)});
  }
  wait_sends();
}

void Pipeline::sum_tied_gradients() {
  if (!ties_lm_head(model_->config())) return;
  if (!is_first() && !is_last()) return;
  torch::NoGradGuard ng;
  torch::Tensor w = is_last() ? tied_copy_ : model_->lm_head_weight();
  const int other = peer(is_first() ? mesh_.pp - 1 : 0);
  if (!w.grad().defined()) w.mutable_grad() = torch::zeros_like(w);
  auto mine = w.grad().detach().contiguous().clone();
  auto work = world_->send_async(mine, other, kTagTied);
  auto theirs = torch::empty_like(mine);
  world_->recv(theirs, other, kTagTied);
  work->wait();
  w.mutable_grad().add_(theirs);  // a + b on one stage, b + a on the other: the same float
}

double Pipeline::clip_grad_norm(double max_norm) {
  std::vector<torch::Tensor> grads, norms;
  std::vector<torch::Tensor> replicated;  // tensor parallel: the same on every rank of the tp group
  for (const auto& item : model_->named_parameters(true)) {
    const torch::Tensor& p = item.value();
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    // The last stage's tied copy holds the same gradient as the first stage's embedding.
    if (tied_copy_.defined() && p.is_same(tied_copy_)) continue;
    auto norm = p.grad().detach().to(torch::kFloat).norm(2);
    (is_sharded_ && !is_sharded_(item.key()) ? replicated : norms).push_back(norm);
  }
  // Summed over the world below: a replicated parameter counts once per tp group.
  const double local_sq = sum_of_squares(norms) + sum_of_squares(replicated) / mesh_.tp;
  auto t = torch::tensor({local_sq}, torch::kDouble);
  world_->all_reduce_sum(t);  // every dp replica of a stage holds the same (averaged) gradients
  const double total = std::sqrt(t.item<double>() / mesh_.dp);
  if (max_norm > 0 && total > max_norm) {
    const double scale = max_norm / (total + 1e-6);
    torch::NoGradGuard ng;
    for (auto& g : grads) g.mul_(scale);
  }
  return total;
}

CausalLM Pipeline::make_full_model() const {
  SkipInitGuard skip;
  CausalLM full(model_->config());
  full->to(model_->parameters().front().device());
  return full;
}

void Pipeline::load_from_full(CausalLM& full) {
  torch::NoGradGuard ng;
  auto src = full->named_parameters(true);
  for (auto& item : model_->named_parameters(true)) {
    const torch::Tensor* from = src.find(item.key());
    if (!from) fail("pipeline: the whole model has no parameter {} (internal error)", item.key());
    item.value().copy_(*from);
  }
}

CausalLM Pipeline::gather_to_rank0(
    std::vector<std::pair<std::string, torch::Tensor>>* optimizer_state) {
  if (mesh_.tp > 1)
    fail("pipeline: a consolidated checkpoint of tp x pp is not gathered (internal error)");
  torch::NoGradGuard ng;
  const bool root = world_->rank() == 0;
  const bool sender = dp_rank_ == 0 && stage_ > 0;
  const bool with_state = !optimizer_state->empty();
  std::map<std::string, torch::Tensor> local;
  for (auto& item : model_->named_parameters(true)) local[item.key()] = item.value().detach();
  for (auto& [name, t] : *optimizer_state) local[name] = t.detach();
  std::vector<std::string> suffixes = {""};
  if (with_state) suffixes = {"", ".exp_avg", ".exp_avg_sq"};

  CausalLM full{nullptr};
  std::map<std::string, torch::Tensor> gathered;
  if (root) full = make_full_model();
  const auto device = model_->parameters().front().device();
  for (const ParamInfo& info : all_params_) {
    for (const auto& suffix : suffixes) {
      const std::string name = info.name + suffix;
      if (info.stage == 0) {
        if (!root) continue;
        auto it = local.find(name);
        if (it == local.end())
          fail("pipeline: stage 0 has no tensor {} to save (internal error)", name);
        gathered[name] = it->second;
      } else if (root) {
        auto t = torch::empty(info.shape, torch::TensorOptions().dtype(info.dtype).device(device));
        world_->recv(t, mesh_rank(mesh_, 0, info.stage), kTagGather);
        gathered[name] = t;
      } else if (sender && info.stage == stage_) {
        auto it = local.find(name);
        if (it == local.end())
          fail("pipeline: stage {} has no tensor {} to save (internal error)", stage_, name);
        auto buf = it->second.contiguous();
        sends_.push_back({buf, world_->send_async(buf, 0, kTagGather)});
      }
    }
  }
  wait_sends();
  if (!root) return full;
  optimizer_state->clear();
  for (auto& item : full->named_parameters(true)) {
    item.value().copy_(gathered.at(item.key()));
    if (with_state)
      for (const char* s : {".exp_avg", ".exp_avg_sq"})
        optimizer_state->emplace_back(item.key() + s, gathered.at(item.key() + s));
  }
  return full;
}

}  // namespace reef
