// Implementation of train/trainer.h.
#include "reef/train/trainer.h"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/hash.h"
#include "reef/base/log.h"
#include "reef/base/progress.h"
#include "reef/checkpoint/dist_checkpoint.h"
#include "reef/nn/init.h"
#include "reef/nn/packing.h"
#include "reef/train/checkpointing.h"
#include "reef/train/metrics.h"
#include "reef/train/mfu.h"
#include "reef/train/optim.h"
#include "reef/train/pipeline_checkpoint.h"

namespace reef {
namespace {

std::atomic<int> g_stop_signal{0};
void on_stop_signal(int sig) { g_stop_signal = sig; }

// Enables autocast to `dtype` on `device` for its lifetime (bf16 compute, fp32 weights).
class AutocastScope {
 public:
  AutocastScope(bool enabled, c10::DeviceType device) : enabled_(enabled), device_(device) {
    if (!enabled_) return;
    prev_ = at::autocast::is_autocast_enabled(device_);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, prev_);
  }

 private:
  bool enabled_, prev_ = false;
  c10::DeviceType device_;
};

}  // namespace

Trainer::Trainer(const Config& cfg, CausalLM model, const Tokenizer& tokenizer,
                 const GptSampleSource& train, const GptSampleSource* valid,
                 nlohmann::json data_spec, std::shared_ptr<ProcessGroup> pg,
                 std::shared_ptr<Peft> peft)
    : cfg_(cfg),
      model_(std::move(model)),
      tokenizer_(tokenizer),
      train_(train),
      valid_(valid),
      data_spec_(std::move(data_spec)),
      device_(cfg.run.device),
      pg_(std::move(pg)),
      peft_(std::move(peft)) {
  model_->to(device_);
  if (peft_) peft_->to(device_);
  const int world = pg_ ? pg_->size() : 1;
  mesh_ = resolve_mesh(cfg_.parallel, world);
  dp_ = mesh_.dp;
  // validate_config has refused what does not combine: PEFT with tp, zero=3 with tp, pp or PEFT,
  // a consolidated layout for tp x pp.
  std::shared_ptr<ProcessGroup> dp_pg;  // the data-parallel group of this rank
  if (mesh_.pp > 1) {                   // keeps only this rank's stage of model_
    SampleLayout layout;
    if (peft_ || (train_.num_samples() > 0 && train_.layout(0, &layout)))
      usage_error(
          "parallel.pp={}: pipeline parallelism supports pretraining samples only so far, not "
          "PEFT adapters or SFT rows (loss masks, packing); use parallel.pp=1",
          mesh_.pp);
    pipeline_ = std::make_unique<Pipeline>(model_, mesh_, pg_);
    dp_pg = pipeline_->dp_group();
    std::string split;
    for (const auto& r : split_layers(model_->config().n_layers, mesh_.pp))
      split += fmt::format("{}[{}, {})", split.empty() ? "" : " ", r.begin, r.end);
    log_info("pipeline: {} stages, decoder layers {}; 1F1B over {} micro-batches per step",
             mesh_.pp, split, cfg_.train.grad_accum);
    if (mesh_.dp > 1) broadcast_module_from_rank0(*model_, *dp_pg);  // identical initial weights
    if (mesh_.tp > 1) {  // then each stage's tensors are split over its tp group
      groups_.tp = make_tp_group(mesh_, pg_);
      tp_ = std::make_unique<TensorParallel>(model_, groups_.tp, cfg_.parallel.sequence_parallel);
      TensorParallel* tp = tp_.get();
      pipeline_->set_tensor_parallel(
          [tp](const std::string& name) { return tp->shard_dim(name) >= 0; }, groups_.tp,
          tp->sequence_parallel() ? mesh_.tp : 1);
    }
  } else {
    // Identical initial weights everywhere, before tensor parallelism slices them.
    if (world > 1) broadcast_module_from_rank0(*model_, *pg_);
    groups_ = make_mesh_groups(mesh_, pg_);
    dp_pg = groups_.dp;
    if (groups_.tp)  // slices the model
      tp_ = std::make_unique<TensorParallel>(model_, groups_.tp, cfg_.parallel.sequence_parallel);
  }
  shard_ = shard_global_batch(cfg_.train.micro_batch_size, cfg_.train.grad_accum, mesh_.dp,
                              mesh_coord(mesh_, pg_ ? pg_->rank() : 0).dp_rank);
  writes_files_ = !pg_ || pg_->rank() == 0;
  NamedParams params;
  std::vector<torch::Tensor> trainable;
  if (peft_) {
    for (auto& [name, t] : peft_->parameters(model_)) {
      params.emplace_back(name, t);
      trainable.push_back(t);
    }
    // Prompt tuning's vectors live outside the model: rank 0's go to every rank.
    if (world > 1 && peft_->prefix().defined()) {
      torch::NoGradGuard ng;
      auto p = peft_->prefix();
      pg_->broadcast(p, 0);
    }
  } else {
    for (const auto& item : model_->named_parameters(true)) {
      params.emplace_back(item.key(), item.value());
      if (item.value().requires_grad()) trainable.push_back(item.value());
    }
  }
  if (mesh_.zero == 3 && mesh_.dp > 1) {  // FSDP: shards the model in place; no gradient all-reduce
    const bool decay_all = cfg_.optim.decay_norms_and_biases;
    fsdp_ = std::make_unique<Fsdp>(model_, dp_pg,
                                   [decay_all](const std::string& name, const torch::Tensor& p) {
                                     return param_gets_weight_decay(name, p, decay_all);
                                   });
    optimizer_ = std::make_unique<Optimizer>(*fsdp_, cfg_.optim);
    log_info(
        "zero=3 (FSDP): {} parameter units sharded over {} ranks; this rank holds {} of {} "
        "parameters",
        fsdp_->units().size(), mesh_.dp, fsdp_->local_elements(), fsdp_->total_elements());
  } else {
    optimizer_ = std::make_unique<Optimizer>(params, cfg_.optim,
                                             mesh_.zero >= 1 && mesh_.dp > 1 ? dp_pg : nullptr);
    if (mesh_.dp > 1)
      grad_sync_ = std::make_unique<GradientSync>(trainable, dp_pg, cfg_.parallel.bucket_mb);
  }
  const int64_t T = cfg_.data.seq_len;
  if (train_.seq_len() != T || (valid_ && valid_->seq_len() != T))
    fail("data: samples of {} tokens for data.seq_len={} (internal error)", train_.seq_len(), T);
  const int64_t need = cfg_.train.max_steps * cfg_.train.micro_batch_size * cfg_.train.grad_accum;
  if (train_.num_samples() < need)
    usage_error(
        "data: the training data offers {} samples of data.seq_len={}, and train.max_steps={} "
        "x micro_batch_size={} x grad_accum={} needs {}; add data, give the blend weights "
        "(so datasets repeat) or train fewer steps",
        train_.num_samples(), T, cfg_.train.max_steps, cfg_.train.micro_batch_size,
        cfg_.train.grad_accum, need);
  if (cfg_.train.eval_every > 0 && (!valid_ || valid_->num_samples() == 0))
    usage_error(
        "data: there is no validation data; add data.valid_files / data.valid_blend, give "
        "data.valid_fraction or a data.split with a validation share, or set "
        "train.eval_every=0");
}

void Trainer::resume_from(const std::string& dir) {
  TrainerState s;
  if (pipeline_ && !tp_) {
    s = load_pipeline_checkpoint(dir, *pipeline_, optimizer_.get());
  } else if (tp_ && looks_distributed(dir)) {  // only this rank's slices are read
    s = load_sharded_checkpoint(dir, sharded_params(), optimizer_.get());
  } else if (tp_) {  // a consolidated checkpoint: read whole, keep this rank's slices (of its
                     // stage)
    CausalLM full{nullptr};
    {
      SkipInitGuard skip;
      full = CausalLM(model_->config());
    }
    std::map<std::string, torch::Tensor> opt, mine;
    s = load_checkpoint_named(dir, full, &opt);
    tp_->load_full_model(full);
    for (const auto& item :
         model_->named_parameters(true))  // the moments of this stage's parameters
      for (const char* m : {".exp_avg", ".exp_avg_sq"})
        if (auto it = opt.find(item.key() + m); it != opt.end()) mine[it->first] = it->second;
    optimizer_->load_state_tensors(tp_->shard_state(mine), s.optimizer_step);
  } else if (fsdp_) {  // whole weights into the gathered model, then this rank's slices
    fsdp_->gather_all();
    s = load_checkpoint(dir, model_, optimizer_.get());
    fsdp_->reshard_from_params();
  } else {
    // With PEFT the adapter was loaded when it was attached; the base comes from its own folder.
    s = load_checkpoint(dir, model_, optimizer_.get(), /*load_weights=*/!peft_);
  }
  if (s.step > cfg_.train.max_steps)
    usage_error("train.max_steps={} is below the checkpoint's step {} ({})", cfg_.train.max_steps,
                s.step, dir);
  const std::string fp = hex64(train_.fingerprint());
  if (s.data_fingerprint != fp) {
    // Name the settings that changed when we can; otherwise the files themselves did.
    std::string changed;
    for (const auto& [k, v] : data_spec_.items())
      if (!s.data_spec.contains(k) || s.data_spec[k] != v)
        changed += fmt::format("{}data.{} was {}, now {}", changed.empty() ? "" : "; ", k,
                               s.data_spec.contains(k) ? s.data_spec[k].dump() : "unset", v.dump());
    if (changed.empty()) changed = "the data files' contents differ";
    usage_error(
        "--resume: the training data differs from checkpoint {} ({}); continuing would not "
        "follow the same sample order. Restore the original data settings, or start a new "
        "run with --overwrite",
        dir, changed);
  }
  step_ = s.step;
  tokens_seen_ = s.tokens_seen;
  consumed_samples_ = s.consumed_samples;
  restore_rng_state(s.rng_cpu_hex);
  resumed_ = true;
  log_info("resumed from {} at step {} ({} samples consumed)", dir, step_, consumed_samples_);
}

int64_t Trainer::count_targets(const GptSampleSource& src, int64_t first, int64_t n) const {
  const int64_t T = cfg_.data.seq_len;
  int64_t count = 0;
  SampleLayout layout;
  for (int64_t b = 0; b < n; ++b) {
    if (!src.layout(first + b, &layout)) {
      count += T;
      continue;
    }
    for (uint8_t m : layout.target_mask) count += m ? 1 : 0;
  }
  return count;
}

Trainer::Batch Trainer::batch_from(const GptSampleSource& src, int64_t first, int64_t n) const {
  const int64_t T1 = cfg_.data.seq_len + 1, T = T1 - 1;
  const int64_t V = model_->config().vocab_size;
  auto out = torch::empty({n, T1}, torch::kInt64);
  int64_t* dst = out.data_ptr<int64_t>();
  std::vector<int32_t> s;
  SampleLayout layout;
  torch::Tensor mask, pos, seg;  // [n, T] when the samples have layouts
  for (int64_t b = 0; b < n; ++b) {
    if (src.layout(first + b, &layout)) {
      if (!mask.defined()) {
        mask = torch::ones({n, T}, torch::kBool);
        pos = torch::arange(T, torch::kInt64).repeat({n, 1});
        seg = torch::zeros({n, T}, torch::kInt64);
      }
      if (static_cast<int64_t>(layout.target_mask.size()) != T ||
          static_cast<int64_t>(layout.position_ids.size()) != T ||
          static_cast<int64_t>(layout.segment_ids.size()) != T)
        fail("data: sample {} has a layout of the wrong length (internal error)", first + b);
      auto* m = mask[b].data_ptr<bool>();
      auto* p = pos[b].data_ptr<int64_t>();
      auto* g = seg[b].data_ptr<int64_t>();
      for (int64_t t = 0; t < T; ++t) {
        m[t] = layout.target_mask[static_cast<size_t>(t)] != 0;
        p[t] = layout.position_ids[static_cast<size_t>(t)];
        g[t] = layout.segment_ids[static_cast<size_t>(t)];
      }
    } else if (mask.defined()) {
      fail("data: sample {} has no layout while others do (internal error)", first + b);
    }
    src.sample(first + b, &s);
    if (static_cast<int64_t>(s.size()) != T1)
      fail("data: sample {} has {} tokens, expected {} (internal error)", first + b, s.size(), T1);
    for (int64_t t = 0; t < T1; ++t) {
      // An id past the embedding would be an out-of-bounds read: data tokenized with another
      // tokenizer is caught here, on the first batch that shows it.
      if (s[t] < 0 || s[t] >= V)
        usage_error(
            "data: token id {} in sample {} is outside model.vocab_size={}; was the "
            "dataset prepared with another tokenizer than data.tokenizer?",
            s[t], first + b, V);
      dst[b * T1 + t] = s[t];
    }
  }
  Batch batch;
  batch.inputs = out.narrow(1, 0, T).to(device_);
  auto targets = out.narrow(1, 1, T).clone();
  if (mask.defined()) {
    targets.masked_fill_(mask.logical_not(), kIgnoreTarget);
    batch.n_targets = mask.sum().item<int64_t>();
    batch.position_ids = pos.to(device_);
    batch.segment_ids = seg.to(device_);
  } else {
    batch.n_targets = n * T;
  }
  batch.targets = targets.to(device_);
  return batch;
}

double Trainer::forward_loss(const Batch& batch, bool with_aux, double ce_scale, double aux_scale) {
  const torch::Tensor prefix = peft_ ? peft_->prefix() : torch::Tensor();
  const int64_t P = prefix.defined() ? prefix.size(0) : 0;
  std::optional<PackedSequences> packed;
  if (batch.segment_ids.defined()) {
    packed.emplace(batch.position_ids, batch.segment_ids);
    if (P > 0) *packed = packed->with_prefix(P);  // the virtual tokens join each row's first sample
  }
  CausalLMImpl::TrainOutput out;
  if (fsdp_) fsdp_->gather_root();  // the decoder layers gather themselves
  {
    AutocastScope ac(cfg_.train.precision == "bf16", device_.type());
    // logits [B, P + T, V] (+ aux for MoE); validation leaves the aux loss out.
    out = model_->forward_train(batch.inputs, packed ? &*packed : nullptr, prefix);
    if (!with_aux) out.aux_loss = torch::Tensor();
  }
  auto logits = P > 0 ? out.logits.narrow(1, P, out.logits.size(1) - P) : out.logits;
  auto ce = ce_sum(logits, batch.targets);
  last_loss_ = ce * ce_scale;
  if (out.aux_loss.defined())
    last_loss_ = last_loss_ +
                 aux_scale * model_->config().router_aux_loss_coef * out.aux_loss.to(torch::kFloat);
  last_aux_loss_ = out.aux_loss.defined() ? out.aux_loss.item<double>() : 0.0;
  return ce.item<double>();
}

torch::Tensor Trainer::ce_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
  // Tensor parallel: logits are this rank's vocab slice; the CE is reduced over the tp group.
  return tp_ ? tp_->token_losses(logits, targets).sum() : causal_lm_loss_sum(logits, targets);
}

double Trainer::evaluate() {
  if (!valid_) return NAN;
  torch::NoGradGuard ng;
  model_->eval();
  const int64_t mb = cfg_.train.micro_batch_size;
  const int64_t want = std::min<int64_t>(valid_->num_samples(), cfg_.train.eval_batches * mb);
  double sum = 0;
  int64_t count = 0;
  if (pipeline_) {  // the last stage scores; every rank gets the sums
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < want; i += mb) rows.push_back(std::min(mb, want - i));
    pipeline_->forward_only(
        rows, cfg_.data.seq_len,
        [&](int64_t k) { return batch_from(*valid_, k * mb, rows[k]).inputs; },
        [&](const torch::Tensor& logits, int64_t k) {
          Batch b = batch_from(*valid_, k * mb, rows[k]);
          sum += ce_sum(logits, b.targets).item<double>();
          count += b.n_targets;
          return torch::Tensor();
        },
        [&](const std::function<void()>& f) {
          AutocastScope ac(cfg_.train.precision == "bf16", device_.type());
          f();
        });
    auto t = torch::tensor({sum, static_cast<double>(count)}, torch::kDouble);
    pg_->all_reduce_sum(t);
    sum = t[0].item<double>();
    count = static_cast<int64_t>(t[1].item<double>());
  }
  for (int64_t i = 0; !pipeline_ && i < want; i += mb) {
    const int64_t n = std::min(mb, want - i);
    Batch b = batch_from(*valid_, i, n);
    sum += forward_loss(b, /*with_aux=*/false, 1.0, 0.0);
    count += b.n_targets;
  }
  if (fsdp_) fsdp_->release_all();
  model_->train();
  return count ? sum / static_cast<double>(count) : NAN;
}

TrainResult Trainer::run() {
  const auto& tc = cfg_.train;
  TrainResult res;
  res.start_step = step_;
  const int64_t tokens_per_step = tc.micro_batch_size * tc.grad_accum * cfg_.data.seq_len;
  double flops_per_token = train_flops_per_token(model_->config(), cfg_.data.seq_len);
  double peak =
      measured_peak_flops(device_, tc.precision == "bf16" ? torch::kBFloat16 : torch::kFloat);
  std::unique_ptr<MetricsLogger> metrics;
  if (writes_files_) metrics = std::make_unique<MetricsLogger>(cfg_, step_, resumed_);
  model_->train();

  g_stop_signal = 0;
  auto old_int = std::signal(SIGINT, on_stop_signal);
  auto old_term = std::signal(SIGTERM, on_stop_signal);

  auto save = [&](int64_t step, double lr) {
    TrainerState s;
    s.step = step;
    s.tokens_seen = tokens_seen_;
    s.consumed_samples = consumed_samples_;
    s.data_fingerprint = hex64(train_.fingerprint());
    s.data_spec = data_spec_;
    s.rng_cpu_hex = capture_rng_state();
    s.lr = lr;
    if ((pipeline_ || tp_) && writes_distributed_checkpoints(cfg_.checkpoint, pg_->size())) {
      // Every rank writes its own parts: its stage, its tensor-parallel slices.
      const std::vector<ShardedParam> parts = sharded_params();
      res.last_checkpoint = save_training_checkpoint(
          cfg_, model_, cfg_.checkpoint.save_optimizer ? optimizer_.get() : nullptr, tokenizer_, s,
          pg_.get(), nullptr, &parts);
      return;
    }
    if (pipeline_) {  // every rank sends its stage to rank 0, which writes the whole checkpoint
      if (cfg_.checkpoint.save_optimizer)
        optimizer_->gather_state();  // ZeRO: every rank takes part
      res.last_checkpoint = save_pipeline_checkpoint(
          cfg_.run.dir, *pipeline_, cfg_.checkpoint.save_optimizer ? optimizer_.get() : nullptr,
          tokenizer_, cfg_, s, cfg_.checkpoint.keep_last);
      return optimizer_->release_gathered_state();
    }
    if (tp_) {  // the unsharded checkpoint a single process reads: gathered over the tp group
      if (cfg_.checkpoint.save_optimizer)
        optimizer_->gather_state();  // ZeRO: every rank takes part
      int64_t opt_step = 0;
      NamedParams opt;
      if (cfg_.checkpoint.save_optimizer)
        opt = tp_->gather_state(optimizer_->state_tensors(&opt_step));
      optimizer_->release_gathered_state();
      CausalLM full = tp_->gather_model();
      if (writes_files_)
        res.last_checkpoint = save_checkpoint_named(
            cfg_.run.dir, full, cfg_.checkpoint.save_optimizer ? &opt : nullptr, opt_step,
            tokenizer_, cfg_, s, cfg_.checkpoint.keep_last);
      return;
    }
    // Every rank: distributed checkpoints, or the ZeRO-1 gather for rank 0's consolidated one.
    CheckpointWeightsWriter write_adapter;
    if (peft_) write_adapter = [this](const std::string& dir) { return peft_->save(dir, model_); };
    res.last_checkpoint = save_training_checkpoint(
        cfg_, model_, cfg_.checkpoint.save_optimizer ? optimizer_.get() : nullptr, tokenizer_, s,
        pg_.get(), write_adapter, nullptr, fsdp_.get());
  };

  if (!resumed_ && tc.eval_every > 0) {
    res.initial_val_loss = evaluate();
    if (metrics) metrics->log(0, {{"val_loss", res.initial_val_loss}});
    log_info("step 0: val_loss {:.4f}", res.initial_val_loss);
  }

  auto t_start = std::chrono::steady_clock::now();
  int64_t steps_timed = 0;
  double lr = 0;
  while (step_ < tc.max_steps) {
    auto t0 = std::chrono::steady_clock::now();
    const CollectiveBytes comm_before = comm_bytes();
    lr = lr_at_step(cfg_.optim, step_, tc.max_steps);
    optimizer_->set_lr(lr);
    optimizer_->zero_grad();
    // This rank's share of the step's global batch; with one rank, the whole of it.
    double loss_sum = 0, aux_sum = 0;
    const int64_t accum = shard_.accum_steps, mb = shard_.micro_batch_size;
    // Every counted target of the step weighs the same: CE sums over the step's count. The
    // all-reduce averages gradients over the dp ranks, hence the factor dp.
    const int64_t step_targets = count_targets(train_, consumed_samples_, shard_.global_batch);
    if (step_targets == 0)
      fail("step {}: no target in the whole batch counts for the loss", step_ + 1);
    const double ce_scale = static_cast<double>(dp_) / static_cast<double>(step_targets);
    if (pipeline_) {  // the 1F1B schedule over this step's micro-batches (DP sync included)
      auto micro_batch = [&](int64_t m) {
        return batch_from(train_, consumed_samples_ + shard_.first + m * mb, mb);
      };
      pipeline_->train_step(
          accum, mb, cfg_.data.seq_len, [&](int64_t m) { return micro_batch(m).inputs; },
          [&](const torch::Tensor& logits, int64_t m) {
            auto ce = ce_sum(logits, micro_batch(m).targets);
            loss_sum += ce.item<double>();
            return ce * ce_scale;
          },
          grad_sync_.get(),
          [&](const std::function<void()>& f) {
            AutocastScope ac(cfg_.train.precision == "bf16", device_.type());
            f();
          });
    }
    for (int64_t m = 0; !pipeline_ && m < accum; ++m) {
      if (grad_sync_) grad_sync_->set_sync(m == accum - 1);  // all-reduce during the last backward
      loss_sum += forward_loss(batch_from(train_, consumed_samples_ + shard_.first + m * mb, mb),
                               /*with_aux=*/true, ce_scale, 1.0 / static_cast<double>(accum));
      aux_sum += last_aux_loss_;
      last_loss_.backward();
      if (fsdp_) fsdp_->after_backward();  // the root's reduce-scatter; every unit released
    }
    consumed_samples_ += shard_.global_batch;
    double loss = loss_sum / static_cast<double>(step_targets);
    double aux = aux_sum / static_cast<double>(accum);
    bool stop = g_stop_signal != 0;  // the step that sees the signal is logged and saved
    if (grad_sync_ && !pipeline_) grad_sync_->finish();  // a pipeline step finishes its own
    if (tp_) tp_->reduce_partial_gradients();  // sequence-parallel norms, Qwen3's q/k norms
    if (pg_) {
      // The mean loss (and aux loss) over ranks, and a stop that any rank saw stops them all at
      // this step. With a pipeline only the last stage's ranks hold a loss.
      auto t = torch::tensor({loss, stop ? 1.0 : 0.0, aux}, torch::kDouble);
      pg_->all_reduce_sum(t);
      // Each rank's share of the step's mean; the tp ranks of a dp rank hold the same share.
      loss = t[0].item<double>() / static_cast<double>(mesh_.tp);
      stop = t[1].item<double>() > 0;
      aux = t[2].item<double>() / static_cast<double>(dp_ * mesh_.tp);
    }
    if (!std::isfinite(loss))
      fail("loss is {} at step {}; lower optim.lr or check the data", loss, step_ + 1);
    double grad_norm = pipeline_ ? pipeline_->clip_grad_norm(tc.clip_grad)
                       : tp_     ? tp_->clip_grad_norm(tc.clip_grad)
                                 : optimizer_->clip_grad_norm(tc.clip_grad);
    optimizer_->step();
    ++step_;
    tokens_seen_ += tokens_per_step;
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++steps_timed;
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    double tps = static_cast<double>(tokens_per_step * steps_timed) / elapsed;
    double mfu = peak > 0 ? tps * flops_per_token / peak : 0;
    res.tokens_per_s = tps;
    res.mfu = mfu;
    res.final_train_loss = loss;

    std::map<std::string, double> rec = {
        {"loss", loss},
        {"lr", lr},
        {"grad_norm", grad_norm},
        {"tokens_per_s", static_cast<double>(tokens_per_step) / dt},
        {"mfu", mfu},
        {"tokens", static_cast<double>(tokens_seen_)}};
    // MoE: loss includes router_aux_loss_coef * aux_loss; aux_loss is the unscaled term.
    if (model_->uses_aux_loss()) rec["aux_loss"] = aux;
    if (pg_) {  // payload this rank handed to each kind of collective during the step
      const CollectiveBytes b = comm_bytes();
      rec["comm_all_reduce_bytes"] = static_cast<double>(b.all_reduce - comm_before.all_reduce);
      rec["comm_all_gather_bytes"] = static_cast<double>(b.all_gather - comm_before.all_gather);
      if (fsdp_ || (tp_ && tp_->sequence_parallel())) {
        rec["comm_reduce_scatter_bytes"] =
            static_cast<double>(b.reduce_scatter - comm_before.reduce_scatter);
        rec["comm_reduce_scatter_calls"] =
            static_cast<double>(b.reduce_scatter_calls - comm_before.reduce_scatter_calls);
      }
      if (pipeline_) rec["comm_send_bytes"] = static_cast<double>(b.send - comm_before.send);
    }
    bool last = step_ == tc.max_steps;
    if (tc.eval_every > 0 && (step_ % tc.eval_every == 0 || last)) {
      res.final_val_loss = evaluate();
      rec["val_loss"] = res.final_val_loss;
      log_info("step {}: val_loss {:.4f}", step_, res.final_val_loss);
    }
    if (!pg_) stop = stop || g_stop_signal != 0;  // one rank: a signal during validation too
    if (metrics && (step_ % cfg_.logging.every == 0 || last || stop || rec.count("val_loss")))
      metrics->log(step_, rec);
    if (metrics)
      metrics->progress(step_, fmt::format("loss {:.4f} lr {:.2e} {} tok/s MFU {:.1f}%", loss, lr,
                                           format_count(tps), 100.0 * mfu));
    if (last || stop || (cfg_.checkpoint.every > 0 && step_ % cfg_.checkpoint.every == 0))
      save(step_, lr);
    if (stop) {
      if (metrics) metrics->finish();
      log_info("stopped by signal {} after step {}; checkpoint {} (resume with --resume)",
               g_stop_signal.load(), step_, res.last_checkpoint);
      res.interrupted = true;
      break;
    }
  }
  if (metrics) metrics->finish();
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  res.end_step = step_;
  return res;
}

std::vector<ShardedParam> Trainer::sharded_params() const {
  std::vector<ShardedParam> out;
  const MeshCoord me = mesh_coord(mesh_, pg_ ? pg_->rank() : 0);
  for (const auto& item : model_->named_parameters(true)) {
    ShardedParam p;
    p.name = item.key();
    p.local = item.value();
    p.global_shape = p.local.sizes().vec();
    p.replicas = "stage";  // pipeline: the stage's dp replicas hold the same tensors
    p.replica_index = me.dp_rank;
    p.n_replicas = mesh_.dp;
    if (tp_) {
      const int64_t d = tp_->shard_dim(p.name);
      if (d >= 0) {  // the dp replicas of this tp rank hold the same slice
        p.global_shape[d] *= mesh_.tp;
        p.offsets.assign(p.global_shape.size(), 0);
        p.offsets[d] = me.tp_rank * p.local.size(d);
        p.replicas = "tp-slice";
      } else {  // replicated over the tp group too; its first rank writes the ZeRO-1 slices
        p.replicas = "replicated";
        p.replica_index = me.dp_rank * mesh_.tp + me.tp_rank;
        p.n_replicas = mesh_.dp * mesh_.tp;
        p.write_zero_slices = me.tp_rank == 0;
      }
    }
    // A tied copy of the token embedding on the last pipeline stage is written by the first.
    if (pipeline_) p.write = pipeline_->owns(p.name);
    out.push_back(std::move(p));
  }
  return out;
}

CollectiveBytes Trainer::comm_bytes() const {
  if (pipeline_) return pipeline_->bytes();  // the world and the stage's dp and tp groups
  CollectiveBytes sum = pg_ ? pg_->bytes() : CollectiveBytes();
  for (const auto& g : {groups_.dp, groups_.tp})
    if (g && g != pg_) sum += g->bytes();  // a subgroup of the world: its own counters
  return sum;
}

}  // namespace reef
