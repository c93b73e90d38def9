// Implementation of recipes/dpo.h.
#include "reef/recipes/dpo.h"

#include "reef/align/dpo_loss.h"
#include "reef/align/reference.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/data/preference.h"
#include "reef/data/preference_dataset.h"
#include "reef/recipes/preference_data.h"
#include "reef/recipes/training.h"

namespace reef {
namespace {

std::unique_ptr<Loss> dpo_prepare(const Config& cfg, CausalLM& model, TrainingData& data,
                                  ProcessGroup* pg) {
  auto* rows = dynamic_cast<PreferenceRows*>(data.train.get());
  if (!rows) fail("dpo: the training data are not preference rows (internal error)");
  if (dpo_uses_reference(cfg.dpo)) {
    const std::string dir = cfg.dpo.reference_cache_dir.empty()
                                ? join_path(cfg.run.dir, "reference_logps")
                                : cfg.dpo.reference_cache_dir;
    ReferenceLogps ref =
        cached_reference_logps(model, *rows, dir, cfg.train.micro_batch_size,
                               torch::Device(cfg.run.device), pg, cfg.train.precision == "bf16");
    rows->set_reference(std::move(ref.chosen), std::move(ref.rejected));
    // The validation pairs' reference, cached the same way (its own key: other pairs).
    if (auto* vrows = dynamic_cast<PreferenceRows*>(data.valid.get())) {
      ReferenceLogps vref =
          cached_reference_logps(model, *vrows, dir, cfg.train.micro_batch_size,
                                 torch::Device(cfg.run.device), pg, cfg.train.precision == "bf16");
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
  if (rc.config.parallel.pp > 1)
    usage_error(
        "parallel.pp={} ({}): reef align dpo scores both answers of a pair from one packed row, "
        "which pipeline stages do not take; use dp, zero or tp",
        rc.config.parallel.pp, rc.from("parallel.pp"));
  TrainingJob job;
  job.command = "align dpo";
  job.needs_model_folder = true;
  job.peft = true;
  job.initial_weights_on_resume = true;
  job.data = [](const ResolvedConfig& r, const Tokenizer& tok, const std::string& dir) {
    PreferenceDataOptions o;
    o.max_length = r.config.dpo.max_length;
    o.share_prompt = true;  // exact under causal attention, and the prompt is computed once
    return preference_data(r, tok, dir, o);
  };
  job.prepare = dpo_prepare;
  return run_training(rc, opts, job);
}

}  // namespace reef
