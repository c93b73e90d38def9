// Implementation of recipes/finetune.h and the SFT data of recipes/training.h.
#include "reef/recipes/finetune.h"

#include <fmt/format.h>

#include <limits>

#include "reef/base/error.h"
#include "reef/base/hash.h"
#include "reef/base/log.h"
#include "reef/data/sft.h"
#include "reef/data/sft_dataset.h"
#include "reef/recipes/training.h"
#include "reef/tokenizer/chat_template.h"

namespace reef {
namespace {

std::vector<SftSample> read_all(const std::vector<std::string>& files, const SftSampleBuilder& b) {
  std::vector<SftSample> out;
  for (const auto& f : files) {
    auto part = read_sft_jsonl(f, b);
    for (auto& s : part) out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

ChatTemplate data_chat_template(const DataConfig& d, const std::string& model_dir,
                                std::string* used) {
  if (!d.chat_template.empty()) {
    *used = d.chat_template;
    return ChatTemplate::named(d.chat_template, model_dir);
  }
  if (ChatTemplate::model_dir_has_template(model_dir)) {
    *used = "model";
    return ChatTemplate::from_model_dir(model_dir);
  }
  log_warn(
      "data.chat_template: {} has no chat template; conversations are rendered with the "
      "built-in chatml (set data.chat_template to choose another)",
      model_dir);
  *used = "chatml";
  return ChatTemplate::builtin("chatml", model_dir);
}

TrainingData sft_data(const ResolvedConfig& rc, const Tokenizer& tokenizer,
                      const std::string& model_dir) {
  const Config& cfg = rc.config;
  const DataConfig& d = cfg.data;
  if (d.train_files.empty())
    usage_error(
        "data.train_files: reef finetune needs SFT JSONL files (lines of {{\"messages\": "
        "[...]}} or {{\"prompt\": ..., \"completion\": ...}})");
  std::string template_used;
  SftSampleBuilder builder(tokenizer,
                           data_chat_template(rc.config.data, model_dir, &template_used));
  auto train = std::make_shared<std::vector<SftSample>>(read_all(d.train_files, builder));
  auto valid = std::make_shared<std::vector<SftSample>>();
  if (!d.valid_files.empty()) {
    *valid = read_all(d.valid_files, builder);
  } else if (d.valid_fraction > 0) {
    // By content hash, so the split does not depend on file order.
    std::vector<SftSample> keep;
    for (auto& s : *train) {
      const uint64_t h = xxh64(s.input_ids.data(), s.input_ids.size() * sizeof(int32_t));
      const double u =
          static_cast<double>(h) / static_cast<double>(std::numeric_limits<uint64_t>::max());
      (u < d.valid_fraction ? *valid : keep).push_back(std::move(s));
    }
    *train = std::move(keep);
  }
  if (train->empty()) usage_error("data.train_files: no training records left");

  SftRowOptions o;
  o.seq_len = d.seq_len;
  o.packing = d.packing;
  o.overlong = d.overlong;
  o.seed = static_cast<uint64_t>(cfg.run.seed);
  o.num_rows = cfg.train.max_steps * cfg.train.micro_batch_size * cfg.train.grad_accum;
  o.pad_id = tokenizer.pad_id() >= 0 ? tokenizer.pad_id() : tokenizer.eos_id();
  TrainingData td;
  auto rows = std::make_unique<SftRows>(train, o);
  const SftRowStats& st = rows->stats();
  log_info(
      "data: {} SFT samples → {} rows of {} tokens per epoch ({}; {:.1f}% of row tokens are "
      "sample tokens), {} supervised tokens per epoch",
      st.samples, st.rows_per_epoch, d.seq_len, d.packing ? "packed" : "one sample per row",
      100.0 * st.fill, st.supervised);
  if (st.dropped > 0 || st.truncated > 0)
    log_warn(
        "data: {} of {} samples are longer than data.seq_len + 1 = {} tokens: {} dropped, {} "
        "cut (data.overlong={})",
        st.dropped + st.truncated, st.samples, d.seq_len + 1, st.dropped, st.truncated, d.overlong);
  td.train = std::move(rows);
  if (!valid->empty()) {
    SftRowOptions v = o;
    v.shuffle = false;
    v.num_rows = 0;
    auto vrows = std::make_unique<SftRows>(valid, v);
    const SftRowStats& vs = vrows->stats();
    log_info("data: {} validation samples → {} rows, {} supervised tokens", vs.samples,
             vrows->num_samples(), vs.supervised);
    if (vs.dropped > 0 || vs.truncated > 0)
      log_warn(
          "data: {} of {} validation samples are longer than data.seq_len + 1 = {} tokens: {} "
          "dropped, {} cut (data.overlong={})",
          vs.dropped + vs.truncated, vs.samples, d.seq_len + 1, vs.dropped, vs.truncated,
          d.overlong);
    td.valid = std::move(vrows);
  }
  td.spec = {{"train_files", d.train_files},
             {"valid_files", d.valid_files},
             {"valid_fraction", d.valid_fraction},
             {"seq_len", d.seq_len},
             {"tokenizer", d.tokenizer},
             {"chat_template", template_used},
             {"packing", d.packing},
             {"overlong", d.overlong}};
  return td;
}

TrainResult run_finetune(const ResolvedConfig& rc, const PretrainOptions& opts) {
  return run_training(rc, opts, /*finetune=*/true);
}

}  // namespace reef
