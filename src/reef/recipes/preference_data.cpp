// Implementation of recipes/preference_data.h.
#include "reef/recipes/preference_data.h"

#include <limits>

#include "reef/base/error.h"
#include "reef/base/hash.h"
#include "reef/base/log.h"
#include "reef/data/preference.h"
#include "reef/data/preference_dataset.h"
#include "reef/tokenizer/chat_template.h"

namespace reef {
namespace {

// Whether pair `p` is held out by data.valid_fraction: by a hash of its tokens.
bool held_out(const PreferencePair& p, double fraction) {
  uint64_t parts[3] = {xxh64(p.prompt.data(), p.prompt.size() * sizeof(int32_t)),
                       xxh64(p.chosen.data(), p.chosen.size() * sizeof(int32_t)),
                       xxh64(p.rejected.data(), p.rejected.size() * sizeof(int32_t))};
  const uint64_t h = xxh64(parts, sizeof(parts));
  return static_cast<double>(h) / static_cast<double>(std::numeric_limits<uint64_t>::max()) <
         fraction;
}

}  // namespace

TrainingData preference_data(const ResolvedConfig& rc, const Tokenizer& tokenizer,
                             const std::string& model_dir, const PreferenceDataOptions& opt) {
  const Config& cfg = rc.config;
  const DataConfig& d = cfg.data;
  if (d.train_files.empty())
    usage_error(
        "data.train_files: reef {} needs preference JSONL files (lines of "
        "{{\"prompt\": ..., \"chosen\": ..., \"rejected\": ...}})",
        opt.command);
  if (d.valid_fraction > 0 && !d.valid_files.empty())
    usage_error(
        "data.valid_fraction={} ({}) and data.valid_files ({}) both set: give held-out pairs one "
        "way",
        d.valid_fraction, rc.from("data.valid_fraction"), rc.from("data.valid_files"));
  const bool has_valid = !d.valid_files.empty() || d.valid_fraction > 0;
  if (cfg.train.eval_every > 0 && !has_valid)
    usage_error(
        "train.eval_every={} ({}): the validation pass scores held-out pairs; give "
        "data.valid_files (preference JSONL) or data.valid_fraction, or set train.eval_every=0",
        cfg.train.eval_every, rc.from("train.eval_every"));
  std::string template_used;
  PreferencePairBuilder builder(tokenizer, data_chat_template(d, model_dir, &template_used));
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
  std::shared_ptr<std::vector<PreferencePair>> vpairs;
  if (!d.valid_files.empty()) {
    vpairs = read_pairs(d.valid_files);
  } else if (d.valid_fraction > 0) {
    vpairs = std::make_shared<std::vector<PreferencePair>>();
    std::vector<PreferencePair> keep;
    for (auto& p : *pairs) (held_out(p, d.valid_fraction) ? *vpairs : keep).push_back(std::move(p));
    *pairs = std::move(keep);
    log_info("data: data.valid_fraction={} holds out {} pairs", d.valid_fraction, vpairs->size());
  }
  if (pairs->empty()) usage_error("data.train_files: no preference pairs");
  PreferenceRowOptions o;
  o.seq_len = d.seq_len;
  o.max_length = opt.max_length;
  o.overlong = d.overlong == "error" ? "error" : "drop";
  o.seed = static_cast<uint64_t>(cfg.run.seed);
  o.num_rows = cfg.train.max_steps * cfg.train.micro_batch_size * cfg.train.grad_accum;
  o.pad_id = tokenizer.pad_id() >= 0 ? tokenizer.pad_id() : tokenizer.eos_id();
  if (o.pad_id < 0) o.pad_id = 0;
  o.inputs_only = opt.inputs_only;
  o.margins = opt.margins;
  o.share_prompt = opt.share_prompt;
  if (d.group_by_length) o.group_rows = 50 * cfg.train.micro_batch_size * cfg.train.grad_accum;
  auto rows = std::make_unique<PreferenceRows>(pairs, o);
  const PreferenceRowStats& st = rows->stats();
  log_info("data: {} preference pairs → {} rows of {} tokens per epoch (chat template: {})",
           st.pairs, st.rows_per_epoch, d.seq_len, template_used);
  if (st.dropped_prompt > 0 || st.dropped_overlong > 0 || st.truncated > 0)
    log_warn(
        "data: {} pairs dropped with a prompt of dpo.max_length={} tokens or more, {} dropped as "
        "longer than a row of {} tokens, {} cut to dpo.max_length",
        st.dropped_prompt, opt.max_length, st.dropped_overlong,
        opt.inputs_only ? d.seq_len : d.seq_len + 1, st.truncated);
  TrainingData td;
  td.train = std::move(rows);
  if (vpairs && cfg.train.eval_every > 0) {
    // Held-out pairs, in file order, each once; the same cut and row rules as training.
    PreferenceRowOptions v = o;
    v.shuffle = false;
    v.num_rows = 0;
    if (vpairs->empty()) usage_error("data: no held-out preference pairs");
    auto vrows = std::make_unique<PreferenceRows>(vpairs, v);
    const PreferenceRowStats& vs = vrows->stats();
    log_info("data: {} validation preference pairs → {} rows ({} dropped)", vs.pairs,
             vs.rows_per_epoch, vs.dropped_prompt + vs.dropped_overlong);
    td.valid = std::move(vrows);
  }
  td.spec = {{"train_files", d.train_files},
             {"valid_files", d.valid_files},
             {"valid_fraction", d.valid_fraction},
             {"seq_len", d.seq_len},
             {"tokenizer", d.tokenizer},
             {"chat_template", template_used},
             {"max_length", opt.max_length},
             {"on_bad_row", d.on_bad_row},
             {"group_by_length", d.group_by_length}};
  return td;
}

}  // namespace reef
