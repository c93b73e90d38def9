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
#include "reef/base/log.h"
#include "reef/base/progress.h"
#include "reef/train/checkpointing.h"
#include "reef/train/metrics.h"
#include "reef/train/mfu.h"
#include "reef/train/optim.h"

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

int configure_threads(int64_t threads) {
  int n = threads > 0 ? static_cast<int>(threads)
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  return n;
}

Trainer::Trainer(const Config& cfg, CausalLM model, const Tokenizer& tokenizer,
                 const TokenStream& train, const TokenStream& valid)
    : cfg_(cfg), model_(std::move(model)), tokenizer_(tokenizer), train_(train), valid_(valid),
      device_(cfg.run.device) {
  model_->to(device_);
  NamedParams params;
  for (const auto& item : model_->named_parameters(true)) params.emplace_back(item.key(), item.value());
  optimizer_ = std::make_unique<Optimizer>(params, cfg_.optim);
  sampler_ = std::make_unique<WindowSampler>(static_cast<int64_t>(train_.tokens.size()),
                                             cfg_.data.seq_len, static_cast<uint64_t>(cfg_.run.seed));
  if (valid_.tokens.size() <= static_cast<size_t>(cfg_.data.seq_len) && cfg_.train.eval_every > 0)
    usage_error("data: the validation set has {} tokens, fewer than data.seq_len+1={}; "
                "add valid_files, raise data.valid_fraction or set train.eval_every=0",
                valid_.tokens.size(), cfg_.data.seq_len + 1);
}

void Trainer::resume_from(const std::string& dir) {
  TrainerState s = load_checkpoint(dir, model_, optimizer_.get());
  if (s.step > cfg_.train.max_steps)
    usage_error("train.max_steps={} is below the checkpoint's step {} ({})", cfg_.train.max_steps,
                s.step, dir);
  step_ = s.step;
  tokens_seen_ = s.tokens_seen;
  sampler_->set_state(s.data);
  restore_rng_state(s.rng_cpu_hex);
  resumed_ = true;
  log_info("resumed from {} at step {}", dir, step_);
}

torch::Tensor Trainer::batch_from(const TokenStream& s, const std::vector<int64_t>& starts) const {
  const int64_t T1 = cfg_.data.seq_len + 1;
  auto out = torch::empty({static_cast<int64_t>(starts.size()), T1}, torch::kInt64);
  auto acc = out.accessor<int64_t, 2>();
  for (size_t b = 0; b < starts.size(); ++b)
    for (int64_t t = 0; t < T1; ++t)
      acc[static_cast<int64_t>(b)][t] = s.tokens[static_cast<size_t>(starts[b] + t)];
  return out.to(device_);
}

double Trainer::forward_loss(const torch::Tensor& batch) {
  // batch [B, T+1]: inputs are the first T tokens, targets the last T.
  auto inputs = batch.narrow(1, 0, batch.size(1) - 1);
  auto targets = batch.narrow(1, 1, batch.size(1) - 1);
  torch::Tensor logits;
  {
    AutocastScope ac(cfg_.train.precision == "bf16", device_.type());
    logits = model_->forward(inputs);  // [B, T, V]
  }
  auto V = logits.size(-1);
  last_loss_ = torch::nn::functional::cross_entropy(logits.reshape({-1, V}).to(torch::kFloat),
                                                    targets.reshape({-1}));
  return last_loss_.item<double>();
}

double Trainer::evaluate() {
  torch::NoGradGuard ng;
  model_->eval();
  const int64_t T = cfg_.data.seq_len;
  int64_t n_windows = (static_cast<int64_t>(valid_.tokens.size()) - 1) / T;
  int64_t want = std::min<int64_t>(n_windows, cfg_.train.eval_batches * cfg_.train.micro_batch_size);
  double sum = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < want; i += cfg_.train.micro_batch_size) {
    std::vector<int64_t> starts;
    for (int64_t j = i; j < std::min(want, i + cfg_.train.micro_batch_size); ++j) starts.push_back(j * T);
    double l = forward_loss(batch_from(valid_, starts));
    sum += l * static_cast<double>(starts.size());
    count += static_cast<int64_t>(starts.size());
  }
  model_->train();
  return count ? sum / static_cast<double>(count) : NAN;
}

TrainResult Trainer::run() {
  const auto& tc = cfg_.train;
  TrainResult res;
  res.start_step = step_;
  const int64_t tokens_per_step = tc.micro_batch_size * tc.grad_accum * cfg_.data.seq_len;
  double flops_per_token = train_flops_per_token(model_->config(), cfg_.data.seq_len);
  double peak = measured_peak_flops(device_, tc.precision == "bf16" ? torch::kBFloat16 : torch::kFloat);
  MetricsLogger metrics(cfg_, step_, resumed_);
  model_->train();

  g_stop_signal = 0;
  auto old_int = std::signal(SIGINT, on_stop_signal);
  auto old_term = std::signal(SIGTERM, on_stop_signal);

  auto save = [&](int64_t step, double lr) {
    TrainerState s;
    s.step = step;
    s.tokens_seen = tokens_seen_;
    s.data = sampler_->state();
    s.rng_cpu_hex = capture_rng_state();
    s.lr = lr;
    res.last_checkpoint = save_checkpoint(cfg_.run.dir, model_, cfg_.checkpoint.save_optimizer ? optimizer_.get() : nullptr,
                                          tokenizer_, cfg_, s, cfg_.checkpoint.keep_last);
  };

  if (!resumed_ && tc.eval_every > 0) {
    res.initial_val_loss = evaluate();
    metrics.log(0, {{"val_loss", res.initial_val_loss}});
    log_info("step 0: val_loss {:.4f}", res.initial_val_loss);
  }

  auto t_start = std::chrono::steady_clock::now();
  int64_t steps_timed = 0;
  double lr = 0;
  while (step_ < tc.max_steps) {
    auto t0 = std::chrono::steady_clock::now();
    lr = lr_at_step(cfg_.optim, step_, tc.max_steps);
    optimizer_->set_lr(lr);
    optimizer_->zero_grad();
    double loss_sum = 0;
    for (int64_t m = 0; m < tc.grad_accum; ++m) {
      std::vector<int64_t> starts;
      for (int64_t b = 0; b < tc.micro_batch_size; ++b) starts.push_back(sampler_->next());
      loss_sum += forward_loss(batch_from(train_, starts));
      (last_loss_ / static_cast<double>(tc.grad_accum)).backward();
    }
    double loss = loss_sum / static_cast<double>(tc.grad_accum);
    if (!std::isfinite(loss)) fail("loss is {} at step {}; lower optim.lr or check the data", loss, step_ + 1);
    double grad_norm = optimizer_->clip_grad_norm(tc.clip_grad);
    optimizer_->step();
    ++step_;
    tokens_seen_ += tokens_per_step;
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++steps_timed;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    double tps = static_cast<double>(tokens_per_step * steps_timed) / elapsed;
    double mfu = peak > 0 ? tps * flops_per_token / peak : 0;
    res.tokens_per_s = tps;
    res.mfu = mfu;
    res.final_train_loss = loss;

    std::map<std::string, double> rec = {{"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm},
                                         {"tokens_per_s", static_cast<double>(tokens_per_step) / dt},
                                         {"mfu", mfu}, {"tokens", static_cast<double>(tokens_seen_)}};
    bool last = step_ == tc.max_steps;
    if (tc.eval_every > 0 && (step_ % tc.eval_every == 0 || last)) {
      res.final_val_loss = evaluate();
      rec["val_loss"] = res.final_val_loss;
      log_info("step {}: val_loss {:.4f}", step_, res.final_val_loss);
    }
    bool stop = g_stop_signal != 0;  // the step that sees the signal is logged and saved
    if (step_ % cfg_.logging.every == 0 || last || stop || rec.count("val_loss")) metrics.log(step_, rec);
    metrics.progress(step_, fmt::format("loss {:.4f} lr {:.2e} {} tok/s MFU {:.1f}%", loss, lr,
                                        format_count(tps), 100.0 * mfu));
    if (last || stop || (cfg_.checkpoint.every > 0 && step_ % cfg_.checkpoint.every == 0)) save(step_, lr);
    if (stop) {
      metrics.finish();
      log_info("stopped by signal {} after step {}; checkpoint {} (resume with --resume)",
               g_stop_signal.load(), step_, res.last_checkpoint);
      res.interrupted = true;
      break;
    }
  }
  metrics.finish();
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  res.end_step = step_;
  return res;
}

}  // namespace reef
