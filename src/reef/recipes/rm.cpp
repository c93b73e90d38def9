// Implementation of recipes/rm.h.
#include "reef/recipes/rm.h"

#include "reef/align/reward_loss.h"
#include "reef/base/error.h"
#include "reef/base/log.h"
#include "reef/data/preference_dataset.h"
#include "reef/recipes/preference_data.h"
#include "reef/recipes/training.h"

namespace reef {

TrainResult run_reward_model(const ResolvedConfig& rc, const PretrainOptions& opts) {
  const Config& cfg = rc.config;
  if (cfg.peft.method != "none")
    usage_error(
        "peft.method={} ({}): reef align rm trains every weight (an adapter would leave the new "
        "score head untrained); use peft.method=none",
        cfg.peft.method, rc.from("peft.method"));
  if (cfg.parallel.pp > 1)
    usage_error(
        "parallel.pp={} ({}): reef align rm reads both sequences of a pair from one packed row, "
        "which pipeline stages do not take; use dp, zero or tp",
        cfg.parallel.pp, rc.from("parallel.pp"));
  TrainingJob job;
  job.command = "align rm";
  job.needs_model_folder = true;
  job.model_config = [](const ResolvedConfig& r, ModelConfig& m, const Tokenizer& tok) {
    if (m.num_labels > 1)
      usage_error(
          "model.init_from ({}): {} is a classifier with {} labels; a reward model has one "
          "output (start from a language model or a reward model)",
          r.from("model.init_from"), m.init_from, m.num_labels);
    m.num_labels = 1;
    // transformers reads a sequence's score at its last token that is not the pad token; TRL
    // pads with the tokenizer's pad token, else its eos.
    if (m.pad_token_id < 0) m.pad_token_id = tok.pad_id() >= 0 ? tok.pad_id() : tok.eos_id();
  };
  job.data = [](const ResolvedConfig& r, const Tokenizer& tok, const std::string& dir) {
    PreferenceDataOptions o;
    o.command = "align rm";
    o.inputs_only = true;
    o.margins = true;
    return preference_data(r, tok, dir, o);
  };
  job.prepare = [](const Config& c, CausalLM& model, TrainingData& data, ProcessGroup*) {
    if (!dynamic_cast<PreferenceRows*>(data.train.get()))
      fail("rm: the training data are not preference rows (internal error)");
    log_info("rm: reward = score at each sequence's last token other than pad id {}",
             model->config().pad_token_id);
    return make_reward_loss(c.rm, model->config());
  };
  return run_training(rc, opts, job);
}

}  // namespace reef
