// Implementation of recipes/pretrain.h.
#include "reef/recipes/pretrain.h"

#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/data/blend.h"
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

// The training and validation samples, and the settings that shape them (kept in checkpoints).
struct TrainingData {
  std::shared_ptr<const TokenStream> train_tokens, valid_tokens;  // documents mode only
  std::unique_ptr<GptSampleSource> train, valid;
  nlohmann::json spec;
};

// Documents mode (data.train_files): read, split and tokenize at start.
TrainingData documents_data(const ResolvedConfig& rc, const Tokenizer& tokenizer) {
  const Config& cfg = rc.config;
  const DataConfig& d = cfg.data;
  if (d.train_files.empty())
    usage_error("data: no training data; set data.blend (indexed datasets from `reef data "
                "prepare`) or data.train_files (documents)");
  std::vector<std::string> train_docs, valid_docs;
  auto docs = read_all(d.train_files, d);
  if (!d.valid_files.empty()) {
    train_docs = std::move(docs);
    valid_docs = read_all(d.valid_files, d);
  } else {
    split_documents(std::move(docs), d.valid_fraction, &train_docs, &valid_docs);
  }
  TrainingData td;
  td.train_tokens = std::make_shared<TokenStream>(tokenize_documents(train_docs, tokenizer));
  td.valid_tokens = std::make_shared<TokenStream>(tokenize_documents(valid_docs, tokenizer));
  log_info("data: {} train documents ({} tokens), {} validation documents ({} tokens)",
           td.train_tokens->n_documents, td.train_tokens->tokens.size(),
           td.valid_tokens->n_documents, td.valid_tokens->tokens.size());
  const auto seed = static_cast<uint64_t>(cfg.run.seed);
  td.train = std::make_unique<TokenWindows>(td.train_tokens, d.seq_len, seed);
  if (static_cast<int64_t>(td.valid_tokens->tokens.size()) > d.seq_len)
    td.valid = std::make_unique<TokenWindows>(td.valid_tokens, d.seq_len, seed, false, 1);
  td.spec = {{"train_files", d.train_files}, {"valid_files", d.valid_files},
             {"valid_fraction", d.valid_fraction}, {"seq_len", d.seq_len},
             {"tokenizer", d.tokenizer}};
  return td;
}

// Indexed mode (data.blend): Megatron-style sample indexes over prepared datasets, sized for
// max_steps (and cached beside the data).
TrainingData indexed_data(const ResolvedConfig& rc) {
  const Config& cfg = rc.config;
  const DataConfig& d = cfg.data;
  const auto& origin = rc.origin;
  auto where = [&](const char* key) {
    auto it = origin.find(key);
    return it == origin.end() ? std::string("default") : it->second;
  };
  GptIndexOptions o;
  o.seq_len = d.seq_len;
  o.seed = static_cast<uint64_t>(cfg.run.seed);
  o.split = d.split;
  o.cache_dir = d.index_cache_dir;
  o.which = Split::kTrain;
  o.num_samples = cfg.train.max_steps * cfg.train.micro_batch_size * cfg.train.grad_accum;
  TrainingData td;
  try {
    td.train = open_gpt_samples(d.blend, o);
  } catch (const Error& e) {
    usage_error("data.blend ({}): {}", where("data.blend"), e.what());
  }
  const int64_t eval_samples = cfg.train.eval_batches * cfg.train.micro_batch_size;
  if (cfg.train.eval_every > 0) {
    GptIndexOptions v = o;
    v.num_samples = eval_samples;
    const char* key = "data.valid_blend";
    try {
      if (!d.valid_blend.empty()) {
        v.split = "0,1,0";
        v.which = Split::kValid;
        td.valid = open_gpt_samples(d.valid_blend, v);
      } else if (parse_split(d.split)[1] > 0) {
        key = "data.split";
        v.which = Split::kValid;
        td.valid = open_gpt_samples(d.blend, v);
      }
    } catch (const Error& e) {
      usage_error("{} ({}): validation samples: {}", key, where(key), e.what());
    }
  }
  td.spec = {{"blend", d.blend}, {"split", d.split}, {"seq_len", d.seq_len},
             {"tokenizer", d.tokenizer}};
  log_info("data: {} training samples of {} tokens from {}{}", td.train->num_samples(), d.seq_len,
           d.blend.size() == 1 ? d.blend[0] : fmt::format("a blend of {}", d.blend.size()),
           td.valid ? fmt::format("; {} validation samples", td.valid->num_samples()) : "");
  return td;
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
  TrainingData data = cfg.data.blend.empty() ? documents_data(rc, *tokenizer) : indexed_data(rc);

  if (cfg.model.vocab_size == 0) cfg.model.vocab_size = tokenizer->vocab_size();
  if (cfg.model.vocab_size < tokenizer->vocab_size())
    usage_error("model.vocab_size={} ({}) is smaller than the tokenizer's {}", cfg.model.vocab_size,
                rc.origin["model.vocab_size"], tokenizer->vocab_size());

  std::optional<std::string> ckpt = latest_checkpoint(cfg.run.dir);
  if (opts.overwrite) {
    ckpt.reset();  // the old run is removed only once this one has passed every check
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

  // The trainer checks the data against the config and the checkpoint before the run folder
  // is written to, so a refused run leaves it as it was.
  Trainer trainer(cfg, model, *tokenizer, *data.train, data.valid.get(), data.spec);
  if (ckpt) trainer.resume_from(*ckpt);
  else if (opts.resume) log_info("--resume: no checkpoint in {}; starting from step 0", cfg.run.dir);
  if (opts.overwrite)
    for (const char* n : {"checkpoints", "metrics.jsonl", "tb"})
      if (path_exists(join_path(cfg.run.dir, n))) remove_all(join_path(cfg.run.dir, n));
  make_dirs(cfg.run.dir);
  write_file_atomic(join_path(cfg.run.dir, "config.yaml"), config_to_yaml(cfg));
  return trainer.run();
}

}  // namespace reef
