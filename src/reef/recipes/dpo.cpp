// Implementation of recipes/dpo.h.
#include "reef/recipes/dpo.h"

#include "reef/align/dpo_loss.h"
#include "reef/align/reference.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/data/preference.h"
#include "reef/data/preference_dataset.h"
#include "reef/recipes/training.h"
#include "reef/tokenizer/chat_template.h"

namespace reef {
namespace {

// The chat template for conversational pairs: data.chat_template, else the model's own, else
// ChatML (as SFT chooses it).
ChatTemplate pair_template(const DataConfig& d, const std::string& model_dir, std::string* used) {
  if (!d.chat_template.empty()) {
    *used = d.chat_template;
    return ChatTemplate::named(d.chat_template, model_dir);
  }
  if (ChatTemplate::model_dir_has_template(model_dir)) {
    *used = "model";
    return ChatTemplate::from_model_dir(model_dir);
  }
  *used = "chatml";
  return ChatTemplate::builtin("chatml", model_dir);
}

TrainingData dpo_data(const ResolvedConfig& rc, const Tokenizer& tokenizer,
                      const std::string& model_dir) {
  const Config& cfg = rc.config;
  const DataConfig& d = cfg.data;
  if (d.train_files.empty())
    usage_error(
        "data.train_files: reef align dpo needs preference JSONL files (lines of "
        "{{\"prompt\": ..., \"chosen\": ..., \"rejected\": ...}})");
  if (d.valid_fraction > 0)
    usage_error(
        "data.valid_fraction={} ({}): reef align dpo takes held-out pairs from data.valid_files "
        "only; give a validation preference file",
        d.valid_fraction, rc.from("data.valid_fraction"));
  if (cfg.train.eval_every > 0 && d.valid_files.empty())
    usage_error(
        "train.eval_every={} ({}): the DPO validation pass scores held-out pairs; give "
        "data.valid_files (preference JSONL) or set train.eval_every=0",
        cfg.train.eval_every, rc.from("train.eval_every"));
  std::string template_used;
  PreferencePairBuilder builder(tokenizer, pair_template(d, model_dir, &template_used));
  const bool skip = d.on_bad_row == "skip";
  auto read_pairs = [&](const std::vector<std::string>& files) {
    auto pairs = std::make_shared<std::vector<PreferencePair>>();
    for (const auto& f : files) {
      PreferenceFile file = read_preference_jsonl(f, builder, skip);
      if (file.skipped > 0)
        log_warn("data: {} bad rows of {} skipped (data.on_bad_row=skip); the first: {}",
                 file.skipped, f, file.first_skip_reason);
      for (auto& p : file.pairs) pairs->push_back(std::move(p));
    }
    return pairs;
  };
  auto pairs = read_pairs(d.train_files);
  if (pairs->empty()) usage_error("data.train_files: no preference pairs");
  PreferenceRowOptions o;
  o.seq_len = d.seq_len;
  o.max_length = cfg.dpo.max_length;
  o.overlong = d.overlong == "error" ? "error" : "drop";
  o.seed = static_cast<uint64_t>(cfg.run.seed);
  o.num_rows = cfg.train.max_steps * cfg.train.micro_batch_size * cfg.train.grad_accum;
  o.pad_id = tokenizer.pad_id() >= 0 ? tokenizer.pad_id() : tokenizer.eos_id();
  if (o.pad_id < 0) o.pad_id = 0;
  auto rows = std::make_unique<PreferenceRows>(pairs, o);
  const PreferenceRowStats& st = rows->stats();
  log_info("data: {} preference pairs → {} rows of {} tokens per epoch (chat template: {})",
           st.pairs, st.rows_per_epoch, d.seq_len, template_used);
  if (st.dropped_prompt > 0 || st.dropped_overlong > 0 || st.truncated > 0)
    log_warn(
        "data: {} pairs dropped with a prompt of dpo.max_length={} tokens or more, {} dropped as "
        "longer than data.seq_len + 1 = {}, {} cut to dpo.max_length",
        st.dropped_prompt, cfg.dpo.max_length, st.dropped_overlong, d.seq_len + 1, st.truncated,
        cfg.dpo.max_length);
  TrainingData td;
  td.train = std::move(rows);
  if (!d.valid_files.empty() && cfg.train.eval_every > 0) {
    // Held-out pairs, in file order, each once; the same cut and row rules as training.
    auto vpairs = read_pairs(d.valid_files);
    PreferenceRowOptions v = o;
    v.shuffle = false;
    v.num_rows = 0;
    auto vrows = std::make_unique<PreferenceRows>(vpairs, v);
    const PreferenceRowStats& vs = vrows->stats();
    log_info("data: {} validation preference pairs → {} rows ({} dropped)", vs.pairs,
             vs.rows_per_epoch, vs.dropped_prompt + vs.dropped_overlong);
    if (vs.rows_per_epoch == 0) usage_error("data.valid_files: no usable preference pairs");
    td.valid = std::move(vrows);
  }
  td.spec = {{"train_files", d.train_files},   {"valid_files", d.valid_files},
             {"seq_len", d.seq_len},           {"tokenizer", d.tokenizer},
             {"chat_template", template_used}, {"max_length", cfg.dpo.max_length},
             {"on_bad_row", d.on_bad_row}};
  return td;
}

std::unique_ptr<Loss> dpo_prepare(const Config& cfg, CausalLM& model, TrainingData& data,
                                  ProcessGroup* pg) {
  auto* rows = dynamic_cast<PreferenceRows*>(data.train.get());
  if (!rows) fail("dpo: the training data are not preference rows (internal error)");
  if (dpo_uses_reference(cfg.dpo)) {
    const std::string dir = cfg.dpo.reference_cache_dir.empty()
                                ? join_path(cfg.run.dir, "reference_logps")
                                : cfg.dpo.reference_cache_dir;
    ReferenceLogps ref = cached_reference_logps(model, *rows, dir, cfg.train.micro_batch_size,
                                                torch::Device(cfg.run.device), pg);
    rows->set_reference(std::move(ref.chosen), std::move(ref.rejected));
    // The validation pairs' reference, cached the same way (its own key: other pairs).
    if (auto* vrows = dynamic_cast<PreferenceRows*>(data.valid.get())) {
      ReferenceLogps vref = cached_reference_logps(model, *vrows, dir, cfg.train.micro_batch_size,
                                                   torch::Device(cfg.run.device), pg);
      vrows->set_reference(std::move(vref.chosen), std::move(vref.rejected));
    }
  }
  return make_dpo_loss(cfg.dpo, model->config());
}

}  // namespace

TrainResult run_dpo(const ResolvedConfig& rc, const PretrainOptions& opts) {
  const std::string& method = rc.config.peft.method;
  if (method != "none" && method != "lora")
    usage_error(
        "peft.method={} ({}): reef align dpo trains every weight or a LoRA adapter; use "
        "peft.method=none or lora",
        method, rc.from("peft.method"));
  TrainingJob job;
  job.command = "align dpo";
  job.needs_model_folder = true;
  job.peft = true;
  job.initial_weights_on_resume = true;
  job.data = dpo_data;
  job.prepare = dpo_prepare;
  return run_training(rc, opts, job);
}

}  // namespace reef
