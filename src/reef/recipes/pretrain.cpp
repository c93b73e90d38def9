// Implementation of recipes/pretrain.h.
#include "reef/recipes/pretrain.h"

#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/data/documents.h"
#include "reef/models/causal_lm.h"
#include "reef/models/hf_config.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/checkpointing.h"

namespace reef {
namespace {

std::vector<std::string> read_all(const std::vector<std::string>& files, const DataConfig& d) {
  std::vector<std::string> docs;
  for (const auto& f : files) {
    auto part = read_documents(f, d.format, d.text_key);
    for (auto& x : part) docs.push_back(std::move(x));
  }
  return docs;
}

}  // namespace

TrainResult run_pretrain(const ResolvedConfig& rc_in, const PretrainOptions& opts) {
  ResolvedConfig rc = rc_in;
  Config& cfg = rc.config;
  if (cfg.run.device.rfind("cuda", 0) == 0 && !torch::cuda::is_available())
    usage_error("run.device={} ({}): no CUDA device is available to this libtorch; use run.device=cpu",
                cfg.run.device, rc.origin["run.device"]);
  int threads = configure_threads(cfg.run.threads);
  log_info("reef pretrain: run.dir {} device {} threads {}", cfg.run.dir, cfg.run.device, threads);

  // Data and tokenizer first: any problem with them is found before the run folder is touched.
  auto tokenizer = make_tokenizer(cfg.data.tokenizer);
  if (cfg.data.train_files.empty()) usage_error("data.train_files: no training files given");
  std::vector<std::string> train_docs, valid_docs;
  auto docs = read_all(cfg.data.train_files, cfg.data);
  if (!cfg.data.valid_files.empty()) {
    train_docs = std::move(docs);
    valid_docs = read_all(cfg.data.valid_files, cfg.data);
  } else {
    split_documents(std::move(docs), cfg.data.valid_fraction, &train_docs, &valid_docs);
  }
  TokenStream train = tokenize_documents(train_docs, *tokenizer);
  TokenStream valid = tokenize_documents(valid_docs, *tokenizer);
  log_info("data: {} train documents ({} tokens), {} validation documents ({} tokens)",
           train.n_documents, train.tokens.size(), valid.n_documents, valid.tokens.size());

  if (cfg.model.vocab_size == 0) cfg.model.vocab_size = tokenizer->vocab_size();
  if (cfg.model.vocab_size < tokenizer->vocab_size())
    usage_error("model.vocab_size={} ({}) is smaller than the tokenizer's {}", cfg.model.vocab_size,
                rc.origin["model.vocab_size"], tokenizer->vocab_size());

  std::optional<std::string> ckpt = latest_checkpoint(cfg.run.dir);
  if (opts.overwrite) {
    for (const char* n : {"checkpoints", "metrics.jsonl", "tb"})
      if (path_exists(join_path(cfg.run.dir, n))) remove_all(join_path(cfg.run.dir, n));
    ckpt.reset();
  } else if (ckpt && !opts.resume) {
    usage_error("run.dir {} already holds checkpoints (newest {}); pass --resume to continue it, "
                "--overwrite to start over, or choose another run.dir", cfg.run.dir, *ckpt);
  }

  torch::manual_seed(static_cast<uint64_t>(cfg.run.seed));
  CausalLM model(cfg.model);
  if (ckpt) {
    // The architecture must match the checkpoint's: resuming into another shape is never silent.
    nlohmann::json saved = nlohmann::json::parse(read_file(join_path(*ckpt, "config.json")));
    nlohmann::json now = hf_config_json(model->config());
    for (const auto& [k, v] : now.items()) {
      if (k == "torch_dtype" || k == "transformers_version") continue;
      if (!saved.contains(k) || saved[k] != v)
        usage_error("--resume: the config's model differs from checkpoint {} in '{}' ({} vs {})",
                    *ckpt, k, v.dump(), saved.contains(k) ? saved[k].dump() : "absent");
    }
  }
  log_info("model: {} with {:.2f}M parameters ({:.2f}M without embeddings)", model->config().arch,
           count_parameters(model->config()) / 1e6, count_parameters(model->config(), false) / 1e6);

  make_dirs(cfg.run.dir);
  write_file_atomic(join_path(cfg.run.dir, "config.yaml"), config_to_yaml(cfg));

  Trainer trainer(cfg, model, *tokenizer, train, valid);
  if (ckpt) trainer.resume_from(*ckpt);
  else if (opts.resume) log_info("--resume: no checkpoint in {}; starting from step 0", cfg.run.dir);
  return trainer.run();
}

}  // namespace reef
