// The training loop, the same for every method and parallel layout: micro-batches with gradient
// accumulation, bf16 autocast over fp32 master weights, clipping, AdamW with the LR schedule,
// periodic validation, metrics, checkpoints and exact resume (same per-step losses as an
// uninterrupted run). The layout is parallel/strategy.h's Strategy (built by parallelize()), the
// objective a train/loss.h Loss, the checkpoints train/checkpointer.h's; rank 0 alone writes
// metrics and logs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "reef/config/config.h"
#include "reef/data/sample_index.h"
#include "reef/models/causal_lm.h"
#include "reef/parallel/strategy.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/checkpointer.h"
#include "reef/train/loss.h"
#include "reef/train/peft.h"

namespace reef {

struct TrainResult {
  int64_t start_step = 0, end_step = 0;
  double initial_val_loss = NAN;  // before the first step (fresh runs only)
  double final_val_loss = NAN;
  double final_train_loss = NAN;
  double tokens_per_s = 0, mfu = 0;
  std::string last_checkpoint;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM after saving a checkpoint
};

class Trainer {
 public:
  // The model must be built (and initialised) already; the sample sources stay owned by the
  // caller. Training draws samples 0, 1, 2, ... of `train` in order (the source shuffles);
  // validation always scores the first eval_batches micro-batches of `valid`. `data_spec` (the
  // data settings, for messages) is saved in checkpoints with the training fingerprint.
  // `pg` (several ranks): the layout cfg.parallel asks for over its ranks (parallelize());
  // every rank constructs its Trainer and runs it in step. `peft` (train/peft.h, already
  // attached to the model): only its parameters train, and checkpoints hold the adapter
  // instead of the model. `loss` (null: the language-model loss, train/loss.h) is the objective.
  //
  // Samples with a layout (SFT rows, data/sft_dataset.h) bring their loss mask, positions and
  // packing segments. The LM loss of a step is the sum of cross-entropy over every counted
  // target of the step (all micro-batches, all ranks) divided by their number, so neither
  // gradient accumulation nor packing nor the world size reweights a token.
  Trainer(const Config& cfg, CausalLM model, const Tokenizer& tokenizer,
          const GptSampleSource& train, const GptSampleSource* valid,
          nlohmann::json data_spec = nlohmann::json::object(),
          std::shared_ptr<ProcessGroup> pg = nullptr, std::shared_ptr<Peft> peft = nullptr,
          std::unique_ptr<Loss> loss = nullptr);
  ~Trainer();
  // Restores model, optimizer, data position and RNG from a checkpoint folder. Refuses a
  // checkpoint whose training data (fingerprint) differs from this run's.
  void resume_from(const std::string& checkpoint_dir);
  TrainResult run();
  // Called at the start of every optimizer step with the step about to run (0-based), before
  // its batches are read: an online method (GRPO) makes the step's samples there. What it
  // returns joins the step's metrics, with the step's own time as "time/training_s".
  using BeforeStep = std::function<std::map<std::string, double>(int64_t step)>;
  void set_before_step(BeforeStep hook) { before_step_ = std::move(hook); }
  // Mean cross-entropy per counted target over the first eval_batches micro-batches of the
  // validation samples; with a loss that scores validation itself (DPO), that loss's mean over
  // the validation samples, its metrics in eval_metrics().
  double evaluate();
  // The last validation pass's metrics as "eval_<name>" (the loss's own names; empty for the
  // language-model loss): means over the validation samples scored.
  const std::map<std::string, double>& eval_metrics() const { return eval_metrics_; }

 private:
  // One optimizer step on this rank's share of the global batch: its metrics ("loss", "lr",
  // "grad_norm", the loss's own); *stop when any rank saw a stop signal.
  std::map<std::string, double> train_step(bool* stop);
  // Adds tokens/s, MFU and the step's collective payloads to `rec`, logs it, validates and
  // checkpoints on their schedules; true when the run stops after this step.
  bool finish_step(std::map<std::string, double>& rec, bool stop, TrainResult& res);
  std::string save(double lr);
  TrainBatch batch(const GptSampleSource& src, int64_t first, int64_t n) const;

  Config cfg_;
  const Tokenizer& tokenizer_;
  const GptSampleSource& train_;
  const GptSampleSource* valid_;  // null: no validation
  std::map<std::string, double> eval_metrics_;
  nlohmann::json data_spec_;
  std::shared_ptr<Peft> peft_;
  std::unique_ptr<Strategy> strategy_;
  std::unique_ptr<Loss> loss_;
  std::unique_ptr<Checkpointer> checkpointer_;
  int64_t step_ = 0, tokens_seen_ = 0, consumed_samples_ = 0;
  bool resumed_ = false;
  bool writes_files_ = true;
  // Throughput over the steps run so far in this process.
  struct Timing;
  std::unique_ptr<Timing> timing_;
  BeforeStep before_step_;
};

}  // namespace reef
