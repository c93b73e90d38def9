// Implementation of train/trainer.h.
#include "reef/train/trainer.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>

#include "reef/base/error.h"
#include "reef/base/hash.h"
#include "reef/base/log.h"
#include "reef/base/progress.h"
#include "reef/train/batches.h"
#include "reef/train/metrics.h"
#include "reef/train/mfu.h"
#include "reef/train/schedule.h"

namespace reef {
namespace {

std::atomic<int> g_stop_signal{0};
void on_stop_signal(int sig) { g_stop_signal = sig; }

// SIGINT / SIGTERM stop the run after the current step (which is saved) for its lifetime.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    old_int_ = std::signal(SIGINT, on_stop_signal);
    old_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

struct Trainer::Timing {
  Clock::time_point start = Clock::now(), step_start;
  int64_t steps = 0;
  double flops_per_token = 0, peak = 0;
  CollectiveBytes bytes_before;
  std::unique_ptr<MetricsLogger> metrics;
};

Trainer::Trainer(const Config& cfg, CausalLM model, const Tokenizer& tokenizer,
                 const GptSampleSource& train, const GptSampleSource* valid,
                 nlohmann::json data_spec, std::shared_ptr<ProcessGroup> pg,
                 std::shared_ptr<Peft> peft, std::unique_ptr<Loss> loss)
    : cfg_(cfg),
      tokenizer_(tokenizer),
      train_(train),
      valid_(valid),
      data_spec_(std::move(data_spec)),
      peft_(std::move(peft)),
      loss_(std::move(loss)) {
  const torch::Device device(cfg_.run.device);
  NamedParams trainable;
  if (peft_) {
    model->to(device);
    peft_->to(device);
    trainable = peft_->parameters(model);
    // Prompt tuning's vectors live outside the model: rank 0's go to every rank.
    if (pg && pg->size() > 1 && peft_->prefix().defined()) {
      torch::NoGradGuard ng;
      auto p = peft_->prefix();
      pg->broadcast(p, 0);
    }
  }
  if (!loss_) loss_ = make_lm_loss(cfg_, model->config());
  strategy_ = parallelize(model, cfg_, pg, std::move(trainable));
  checkpointer_ = std::make_unique<Checkpointer>(cfg_, *strategy_, tokenizer_, peft_);
  writes_files_ = strategy_->rank() == 0;
  SampleLayout layout;
  if (!strategy_->supports_packed_rows() && train_.num_samples() > 0 && train_.layout(0, &layout))
    usage_error(
        "parallel.pp={}: pipeline parallelism supports pretraining samples only so far, not "
        "SFT rows (loss masks, packing); use parallel.pp=1",
        strategy_->mesh().pp);
  const int64_t T = train_.seq_len();
  if (valid_ && valid_->seq_len() != T)
    fail("data: validation samples of {} tokens, training samples of {} (internal error)",
         valid_->seq_len(), T);
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

Trainer::~Trainer() = default;

void Trainer::resume_from(const std::string& dir) {
  TrainerState s = checkpointer_->load(dir);
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

TrainBatch Trainer::batch(const GptSampleSource& src, int64_t first, int64_t n) const {
  // Trimmed columns stay a multiple of tp (sequence parallelism splits them over the tp ranks).
  TrainBatch b = make_train_batch(src, first, n, strategy_->model()->config().vocab_size,
                                  torch::Device(cfg_.run.device), strategy_->mesh().tp);
  if (peft_) b.inputs.prefix_embeds = peft_->prefix();
  // A loss that counts part of the positions (prompts, padding) needs the LM head nowhere else.
  if (loss_->reads_logits_at_targets_only()) mark_head_positions(b);
  return b;
}

namespace {

// The console's share of a validation pass's own metrics: the preference accuracy and margin.
std::string eval_summary(const std::map<std::string, double>& m) {
  std::string out;
  for (const char* k :
       {"eval_rewards/accuracies", "eval_rewards/margins", "eval_accuracy", "eval_margin"}) {
    auto it = m.find(k);
    if (it != m.end()) out += fmt::format(" {} {:.4f}", k, it->second);
  }
  return out;
}

}  // namespace

double Trainer::evaluate() {
  if (!valid_) return NAN;
  torch::NoGradGuard ng;
  strategy_->model()->eval();
  const int64_t mb = cfg_.train.micro_batch_size;
  const int64_t want = std::min<int64_t>(valid_->num_samples(), cfg_.train.eval_batches * mb);
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < want; i += mb) rows.push_back(std::min(mb, want - i));
  double sum = 0, count = 0;
  std::vector<TrainBatch> batches;
  for (size_t k = 0; k < rows.size(); ++k) batches.push_back(batch(*valid_, k * mb, rows[k]));
  if (loss_->scores_validation()) {
    // The loss's metrics of each micro-batch (its means over the micro-batch's samples)
    // weighted by its samples: means over every sample scored, whatever the last batch's size.
    const std::vector<std::string> names = loss_->metric_names();
    std::vector<double> sums(names.size() + 1, 0.0);
    strategy_->forward_only(
        rows, valid_->seq_len(), [&](int64_t k) { return batches[k].inputs; },
        [&](const ModelOutputs& out, int64_t k) {
          StepTotals one{batches[k].n_targets, 1, 1};
          LossResult r = loss_->compute(out, batches[k], one);
          const auto n = static_cast<double>(rows[static_cast<size_t>(k)]);
          for (size_t i = 0; i < names.size(); ++i) sums[i] += n * r.metrics[names[i]];
          sums[names.size()] += n;
        });
    auto t = torch::tensor(sums, torch::kDouble);
    strategy_->all_reduce_sum(t);
    strategy_->model()->train();
    const double n = t[static_cast<int64_t>(names.size())].item<double>();
    eval_metrics_.clear();
    for (size_t i = 0; i < names.size(); ++i)
      eval_metrics_["eval_" + names[i]] =
          n > 0 ? t[static_cast<int64_t>(i)].item<double>() / n : NAN;
    return eval_metrics_["eval_loss"];
  }
  strategy_->forward_only(
      rows, valid_->seq_len(), [&](int64_t k) { return batches[k].inputs; },
      [&](const ModelOutputs& out, int64_t k) {
        sum += out.cross_entropy_sum(batches[k].targets).item<double>();
        count += static_cast<double>(batches[k].n_targets);
      });
  // Every rank gets the sums (with pipeline stages, only the last stage's ranks hold outputs).
  auto t = torch::tensor({sum, count}, torch::kDouble);
  strategy_->all_reduce_sum(t);
  strategy_->model()->train();
  return t[1].item<double>() > 0 ? t[0].item<double>() / t[1].item<double>() : NAN;
}

std::map<std::string, double> Trainer::train_step(bool* stop) {
  const double lr = lr_at_step(cfg_.optim, step_, cfg_.train.max_steps);
  strategy_->optimizer().set_lr(lr);
  strategy_->optimizer().zero_grad();
  // This rank's share of the step's global batch; with one rank, the whole of it.
  const BatchShard& shard = strategy_->shard();
  StepTotals totals{count_targets(train_, consumed_samples_, shard.global_batch), shard.accum_steps,
                    strategy_->gradient_average()};
  if (totals.targets == 0)
    fail("step {}: no target in the whole batch counts for the loss", step_ + 1);
  std::vector<TrainBatch> batches;
  for (int64_t m = 0; m < shard.accum_steps; ++m)
    batches.push_back(batch(train_, consumed_samples_ + shard.first + m * shard.micro_batch_size,
                            shard.micro_batch_size));
  const std::vector<std::string> names = loss_->metric_names();
  std::vector<double> sums(names.size(), 0.0);
  strategy_->forward_backward(
      shard.accum_steps, train_.seq_len(), [&](int64_t m) { return batches[m].inputs; },
      [&](const ModelOutputs& out, int64_t m) {
        LossResult r = loss_->compute(out, batches[m], totals);
        for (size_t i = 0; i < names.size(); ++i) sums[i] += r.metrics[names[i]];
        return r.objective;
      });
  consumed_samples_ += shard.global_batch;
  const double grad_norm = strategy_->finish_gradients(cfg_.train.clip_grad);
  // The step's metrics over every rank (the ranks of a tp group hold the same shares; pipeline
  // stages other than the last hold none), and a stop any rank saw stops them all here.
  sums.push_back(g_stop_signal != 0 ? 1.0 : 0.0);
  auto t = torch::tensor(sums, torch::kDouble);
  strategy_->all_reduce_sum(t);
  std::map<std::string, double> rec = {{"lr", lr}, {"grad_norm", grad_norm}};
  for (size_t i = 0; i < names.size(); ++i)
    rec[names[i]] = t[static_cast<int64_t>(i)].item<double>() / strategy_->mesh().tp;
  *stop = t[static_cast<int64_t>(names.size())].item<double>() > 0;
  if (!std::isfinite(rec["loss"]))
    fail("loss is {} at step {}; lower optim.lr or check the data", rec["loss"], step_ + 1);
  strategy_->step();
  ++step_;
  return rec;
}

TrainResult Trainer::run() {
  const auto& tc = cfg_.train;
  TrainResult res;
  res.start_step = step_;
  timing_ = std::make_unique<Timing>();
  const torch::Device device(cfg_.run.device);
  timing_->flops_per_token = train_flops_per_token(strategy_->model()->config(), train_.seq_len());
  timing_->peak =
      measured_peak_flops(device, tc.precision == "bf16" ? torch::kBFloat16 : torch::kFloat);
  if (writes_files_) timing_->metrics = std::make_unique<MetricsLogger>(cfg_, step_, resumed_);
  strategy_->model()->train();
  StopSignals signals;
  if (!resumed_ && tc.eval_every > 0) {
    res.initial_val_loss = evaluate();
    std::map<std::string, double> rec = eval_metrics_;
    rec["val_loss"] = res.initial_val_loss;
    if (timing_->metrics) timing_->metrics->log(0, rec);
    log_info("step 0: val_loss {:.4f}{}", res.initial_val_loss, eval_summary(eval_metrics_));
  }
  timing_->start = Clock::now();
  bool stop = false;
  while (step_ < tc.max_steps && !stop) {
    timing_->step_start = Clock::now();
    timing_->bytes_before = strategy_->bytes();
    std::map<std::string, double> extra;
    if (before_step_) extra = before_step_(step_);
    const auto train_start = Clock::now();
    std::map<std::string, double> rec = train_step(&stop);
    // With a before-step hook, the step's own time beside the hook's (GRPO's time split).
    if (before_step_) extra["time/training_s"] = seconds(train_start, Clock::now());
    rec.insert(extra.begin(), extra.end());
    stop = finish_step(rec, stop, res);
  }
  if (timing_->metrics) timing_->metrics->finish();
  res.end_step = step_;
  return res;
}

bool Trainer::finish_step(std::map<std::string, double>& rec, bool stop, TrainResult& res) {
  const auto& tc = cfg_.train;
  const int64_t tokens_per_step = tc.micro_batch_size * tc.grad_accum * train_.seq_len();
  tokens_seen_ += tokens_per_step;
  const auto now = Clock::now();
  ++timing_->steps;
  const double tps =
      static_cast<double>(tokens_per_step * timing_->steps) / seconds(timing_->start, now);
  res.tokens_per_s = tps;
  res.mfu = timing_->peak > 0 ? tps * timing_->flops_per_token / timing_->peak : 0;
  res.final_train_loss = rec["loss"];
  rec["tokens_per_s"] = static_cast<double>(tokens_per_step) / seconds(timing_->step_start, now);
  rec["mfu"] = res.mfu;
  rec["tokens"] = static_cast<double>(tokens_seen_);
  if (strategy_->world()) {  // payload this rank handed to each kind of collective during the step
    const CollectiveBytes b = strategy_->bytes(), a = timing_->bytes_before;
    rec["comm_all_reduce_bytes"] = static_cast<double>(b.all_reduce - a.all_reduce);
    rec["comm_all_gather_bytes"] = static_cast<double>(b.all_gather - a.all_gather);
    if (strategy_->reduce_scatters()) {
      rec["comm_reduce_scatter_bytes"] = static_cast<double>(b.reduce_scatter - a.reduce_scatter);
      rec["comm_reduce_scatter_calls"] =
          static_cast<double>(b.reduce_scatter_calls - a.reduce_scatter_calls);
    }
    if (strategy_->mesh().pp > 1) rec["comm_send_bytes"] = static_cast<double>(b.send - a.send);
  }
  const bool last = step_ == tc.max_steps;
  if (tc.eval_every > 0 && (step_ % tc.eval_every == 0 || last)) {
    res.final_val_loss = evaluate();
    rec["val_loss"] = res.final_val_loss;
    for (const auto& [k, v] : eval_metrics_) rec[k] = v;
    log_info("step {}: val_loss {:.4f}{}", step_, res.final_val_loss, eval_summary(eval_metrics_));
  }
  if (!strategy_->world()) stop = stop || g_stop_signal != 0;  // one rank: during validation too
  auto* metrics = timing_->metrics.get();
  if (metrics && (step_ % cfg_.logging.every == 0 || last || stop || rec.count("val_loss")))
    metrics->log(step_, rec);
  if (metrics)
    metrics->progress(step_,
                      fmt::format("loss {:.4f}{} lr {:.2e} {} tok/s MFU {:.1f}%", rec["loss"],
                                  rec.count("reward") ? fmt::format(" reward {:.3f}", rec["reward"])
                                                      : std::string(),
                                  rec["lr"], format_count(tps), 100.0 * res.mfu));
  if (last || stop || (cfg_.checkpoint.every > 0 && step_ % cfg_.checkpoint.every == 0))
    res.last_checkpoint = save(rec["lr"]);
  if (stop) {
    log_info("stopped by signal {} after step {}; checkpoint {} (resume with --resume)",
             g_stop_signal.load(), step_, res.last_checkpoint);
    res.interrupted = true;
  }
  return stop;
}

std::string Trainer::save(double lr) {
  TrainerState s;
  s.step = step_;
  s.tokens_seen = tokens_seen_;
  s.consumed_samples = consumed_samples_;
  s.data_fingerprint = hex64(train_.fingerprint());
  s.data_spec = data_spec_;
  s.rng_cpu_hex = capture_rng_state();
  s.lr = lr;
  return checkpointer_->save(s);
}

}  // namespace reef
