// Implementation of recipes/pretrain.h.
#include "reef/recipes/pretrain.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/threads.h"
#include "reef/checkpoint/model_io.h"
#include "reef/data/blend.h"
#include "reef/data/documents.h"
#include "reef/models/causal_lm.h"
#include "reef/models/hf_config.h"
#include "reef/nn/init.h"
#include "reef/parallel/dist_env.h"
#include "reef/parallel/mesh.h"
#include "reef/parallel/process_group.h"
#include "reef/recipes/training.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/checkpoint_files.h"

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

// Documents mode (data.train_files): read, split and tokenize at start.
TrainingData documents_data(const ResolvedConfig& rc, const Tokenizer& tokenizer) {
  const Config& cfg = rc.config;
  const DataConfig& d = cfg.data;
  if (d.train_files.empty())
    usage_error(
        "data: no training data; set data.blend (indexed datasets from `reef data "
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
  auto train_tokens = std::make_shared<TokenStream>(tokenize_documents(train_docs, tokenizer));
  auto valid_tokens = std::make_shared<TokenStream>(tokenize_documents(valid_docs, tokenizer));
  log_info("data: {} train documents ({} tokens), {} validation documents ({} tokens)",
           train_tokens->n_documents, train_tokens->tokens.size(), valid_tokens->n_documents,
           valid_tokens->tokens.size());
  const auto seed = static_cast<uint64_t>(cfg.run.seed);
  td.train = std::make_unique<TokenWindows>(train_tokens, d.seq_len, seed);
  if (static_cast<int64_t>(valid_tokens->tokens.size()) > d.seq_len)
    td.valid = std::make_unique<TokenWindows>(valid_tokens, d.seq_len, seed, false, 1);
  td.spec = {{"train_files", d.train_files},
             {"valid_files", d.valid_files},
             {"valid_fraction", d.valid_fraction},
             {"seq_len", d.seq_len},
             {"tokenizer", d.tokenizer}};
  return td;
}

// Indexed mode (data.blend): Megatron-style sample indexes over prepared datasets, sized for
// max_steps (and cached beside the data).
TrainingData indexed_data(const ResolvedConfig& rc) {
  const Config& cfg = rc.config;
  const DataConfig& d = cfg.data;
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
    usage_error("data.blend ({}): {}", rc.from("data.blend"), e.what());
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
      usage_error("{} ({}): validation samples: {}", key, rc.from(key), e.what());
    }
  }
  td.spec = {
      {"blend", d.blend}, {"split", d.split}, {"seq_len", d.seq_len}, {"tokenizer", d.tokenizer}};
  log_info("data: {} training samples of {} tokens from {}{}", td.train->num_samples(), d.seq_len,
           d.blend.size() == 1 ? d.blend[0] : fmt::format("a blend of {}", d.blend.size()),
           td.valid ? fmt::format("; {} validation samples", td.valid->num_samples()) : "");
  return td;
}

// Model keys that are training options rather than architecture (HF keeps them in config.json).
bool is_training_option(const std::string& key) {
  return key == "model.output_router_logits" || key == "model.router_aux_loss_coef";
}

// Calls f(field) on the field of `c` named `name` (as visit() names them).
template <class F>
void with_field(ModelConfig& c, const std::string& name, F&& f) {
  auto visitor = [&](const char* n, auto& field, const char*) {
    if (name == n) f(field);
  };
  c.visit(visitor);
}

}  // namespace

ModelConfig model_config_from_folder(const ResolvedConfig& rc, const std::string& dir) {
  const std::string path = join_path(dir, "config.json");
  if (!path_exists(path))
    usage_error("model.init_from ({}): not a Hugging Face model folder (no config.json): {}",
                rc.from("model.init_from"), dir);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    usage_error("{}: malformed JSON: {}", path, e.what());
  }
  const ModelConfig folder = model_config_from_hf(j, path);
  const nlohmann::json folder_json = hf_config_json(folder);
  ModelConfig want = rc.config.model;
  // A key the config sets explicitly agrees when putting it into the folder's config changes
  // nothing HF would see (so "auto" values that resolve to the folder's agree too).
  auto check = [&](const char* name, auto& value, const char*) {
    const std::string key = std::string("model.") + name;
    if (key == "model.init_from" || key == "model.preset" || rc.is_default(key)) return;
    if (is_training_option(key)) return;  // applied over the folder's below
    ModelConfig trial = folder;
    with_field(trial, name, [&](auto& field) {
      if constexpr (std::is_same_v<std::decay_t<decltype(field)>, std::decay_t<decltype(value)>>)
        field = value;
    });
    bool agree = false;
    try {
      agree = hf_config_json(trial) == folder_json;
    } catch (const Error&) {
    }
    if (!agree) {
      ModelConfig f = folder;
      std::string theirs;
      with_field(f, name, [&](auto& field) { theirs = fmt::format("{}", field); });
      usage_error(
          "{}={} ({}) conflicts with the model folder {}, which has {}={}; leave {} unset "
          "to take the folder's architecture",
          key, value, rc.from(key), dir, key, theirs, key);
    }
  };
  want.visit(check);
  ModelConfig out = folder;
  // MoE training options live in config.json but do not change the network: a config may set
  // them over the folder's (e.g. to fine-tune a Hub Mixtral with the load-balancing loss).
  if (out.n_experts > 0) {
    if (!rc.is_default("model.output_router_logits"))
      out.output_router_logits = rc.config.model.output_router_logits;
    if (!rc.is_default("model.router_aux_loss_coef"))
      out.router_aux_loss_coef = rc.config.model.router_aux_loss_coef;
  }
  out.init_from = rc.config.model.init_from;
  out.preset = rc.config.model.preset;
  return out;
}

TrainResult run_pretrain(const ResolvedConfig& rc, const PretrainOptions& opts) {
  return run_training(rc, opts, /*finetune=*/false);
}

TrainResult run_training(const ResolvedConfig& rc, const PretrainOptions& opts, bool finetune) {
  TrainingJob job;
  job.command = finetune ? "finetune" : "pretrain";
  job.needs_model_folder = job.peft = finetune;
  job.data = [finetune](const ResolvedConfig& r, const Tokenizer& tok, const std::string& dir) {
    return finetune                      ? sft_data(r, tok, dir)
           : r.config.data.blend.empty() ? documents_data(r, tok)
                                         : indexed_data(r);
  };
  return run_training(rc, opts, job);
}

TrainResult run_training(const ResolvedConfig& rc_in, const PretrainOptions& opts,
                         const TrainingJob& job) {
  const char* command = job.command.c_str();
  ResolvedConfig rc = rc_in;
  Config& cfg = rc.config;
  if (cfg.run.device.rfind("cuda", 0) == 0 && !torch::cuda::is_available())
    usage_error(
        "run.device={} ({}): no CUDA device is available to this libtorch; use run.device=cpu",
        cfg.run.device, rc.from("run.device"));
  // Several ranks (reef launch, torchrun, srun, mpirun): join the process group first, so a bad
  // environment or mesh is reported before any work; only rank 0 logs (errors excepted).
  const DistEnv env = dist_env_from(current_environment());
  std::shared_ptr<ProcessGroup> pg;
  const Mesh mesh = resolve_mesh(cfg.parallel, env.world_size);
  const bool sequence_parallel =
      cfg.parallel.sequence_parallel && mesh.tp > 1;  // seq_len checked with the config
  if (cfg.parallel.sequence_parallel && mesh.tp == 1)
    log_warn(
        "parallel.sequence_parallel=true has no effect with parallel.tp=1 (it splits the "
        "tensor-parallel ranks' sequence)");
  if (env.distributed()) {
    if (env.rank != 0) set_log_level(LogLevel::kError);
    if (cfg.run.device == "cuda") cfg.run.device = fmt::format("cuda:{}", env.local_rank);
    if (cfg.run.threads == 0) {  // the node's cores shared among its ranks
      const int64_t cores = thread_count(0);
      cfg.run.threads = std::max<int64_t>(1, cores / env.local_world_size);
    }
    ProcessGroupOptions po;
    po.timeout = std::chrono::seconds(cfg.parallel.timeout_s);
    po.backend = cfg.parallel.backend;
    po.device = cfg.run.device;
    pg = ProcessGroup::create(env, po);
    log_info("parallel: {} ranks ({} environment, {} backend), dp={} tp={} pp={} zero={}{}",
             env.world_size, env.source, pg->backend(), mesh.dp, mesh.tp, mesh.pp, mesh.zero,
             sequence_parallel ? " sequence_parallel" : "");
  }
  const bool writes_files = !pg || pg->rank() == 0;
  const int threads = thread_count(cfg.run.threads);
  torch::set_num_threads(threads);
  log_info("reef {}: run.dir {} device {} threads {}", command, cfg.run.dir, cfg.run.device,
           threads);

  std::optional<std::string> ckpt = latest_checkpoint(cfg.run.dir);
  if (opts.overwrite) {
    ckpt.reset();  // the old run is removed only once this one has passed every check
  } else if (ckpt && !opts.resume) {
    usage_error(
        "run.dir {} already holds checkpoints (newest {}); pass --resume to continue it, "
        "--overwrite to start over, or choose another run.dir",
        cfg.run.dir, *ckpt);
  }

  // model.init_from: the architecture comes from the folder (from the run's own checkpoint when
  // resuming, so the init folder's weights are never reread), its tokenizer is the default.
  const bool from_folder = !cfg.model.init_from.empty();
  // A Reef run folder stands for its newest checkpoint.
  if (from_folder && !path_exists(join_path(cfg.model.init_from, "config.json"))) {
    if (auto newest = latest_checkpoint(cfg.model.init_from)) {
      log_info("model.init_from: {} is a run folder; using its newest checkpoint {}",
               cfg.model.init_from, *newest);
      cfg.model.init_from = *newest;
    }
  }
  // PEFT checkpoints hold the adapter only: the base is always the init folder.
  const bool peft = job.peft && cfg.peft.method != "none";
  if (job.needs_model_folder && !from_folder)
    usage_error(
        "reef {} needs model.init_from: the model folder (Hugging Face layout, or a "
        "Reef checkpoint or run folder) to fine-tune",
        command);
  if (peft && ckpt && !path_exists(join_path(*ckpt, "adapter_config.json")))
    usage_error(
        "--resume: checkpoint {} holds a whole model, not a peft.method={} adapter; start a "
        "new run.dir or set peft.method=none",
        *ckpt, cfg.peft.method);
  if (!peft && ckpt && path_exists(join_path(*ckpt, "adapter_config.json")))
    usage_error("--resume: checkpoint {} holds a PEFT adapter; set peft.method as that run did",
                *ckpt);
  if (from_folder) {
    cfg.model = model_config_from_folder(rc, ckpt && !peft ? *ckpt : cfg.model.init_from);
    if (rc.is_default("data.tokenizer")) {
      auto tok_dir = cfg.model.init_from;
      for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"}) {
        if (path_exists(join_path(tok_dir, f))) {
          cfg.data.tokenizer = tok_dir;
          rc.origin["data.tokenizer"] = "model.init_from";
          break;
        }
      }
    }
    if (cfg.data.seq_len > cfg.model.max_seq_len)
      usage_error("data.seq_len={} ({}) is longer than the max_seq_len {} of model folder {}",
                  cfg.data.seq_len, rc.from("data.seq_len"), cfg.model.max_seq_len,
                  cfg.model.init_from);
  }

  // Data and tokenizer next: any problem with them is found before the run folder is touched.
  auto tokenizer = make_tokenizer(cfg.data.tokenizer);
  if (from_folder && tokenizer->vocab_size() > cfg.model.vocab_size)
    usage_error(
        "data.tokenizer={} ({}) has {} tokens but the model folder {} has vocab_size {}; "
        "use the folder's tokenizer or one of at most that size",
        cfg.data.tokenizer, rc.from("data.tokenizer"), tokenizer->vocab_size(), cfg.model.init_from,
        cfg.model.vocab_size);
  // A sequence classifier (reward model) built on a language model folder: the body's weights
  // are loaded and the new head initialised (below).
  const bool folder_is_classifier = cfg.model.num_labels > 0;
  if (job.model_config) job.model_config(rc, cfg.model, *tokenizer);
  const bool new_head = cfg.model.num_labels > 0 && !folder_is_classifier;
  TrainingData data = job.data(rc, *tokenizer, cfg.model.init_from);

  if (cfg.model.vocab_size == 0) cfg.model.vocab_size = tokenizer->vocab_size();
  if (cfg.model.vocab_size < tokenizer->vocab_size())
    usage_error("model.vocab_size={} ({}) is smaller than the tokenizer's {}", cfg.model.vocab_size,
                rc.from("model.vocab_size"), tokenizer->vocab_size());

  torch::manual_seed(static_cast<uint64_t>(cfg.run.seed));
  std::optional<SkipInitGuard> skip_init;  // from a folder every value is loaded: draw nothing
  if (from_folder) skip_init.emplace();
  CausalLM model(cfg.model);
  skip_init.reset();
  if (ckpt && !peft) {
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
  if (from_folder && (!ckpt || peft || job.initial_weights_on_resume)) {
    if (new_head) {
      // transformers' new head: normal(0, initializer_range), drawn from the run's seed.
      load_backbone_weights(model, cfg.model.init_from);
      torch::NoGradGuard ng;
      model->lm_head->weight.normal_(0.0, model->config().init_std);
      log_info("model: body weights from {}; new {} head of {} output(s), initialised",
               cfg.model.init_from, model->head_name(), cfg.model.num_labels);
    } else {
      load_model_weights(model, cfg.model.init_from);  // strict: every tensor, every parameter
      log_info("model: weights from {}", cfg.model.init_from);
    }
  }
  log_info("model: {} with {:.2f}M parameters ({:.2f}M without embeddings)", model->config().arch,
           count_parameters(model->config()) / 1e6, count_parameters(model->config(), false) / 1e6);
  std::unique_ptr<Loss> loss;
  if (job.prepare) loss = job.prepare(cfg, model, data, pg.get());
  std::shared_ptr<Peft> adapter;
  if (peft) adapter = attach_peft(model, cfg, *tokenizer, cfg.model.init_from, ckpt ? *ckpt : "");

  // The trainer checks the data against the config and the checkpoint before the run folder
  // is written to, so a refused run leaves it as it was.
  Trainer trainer(cfg, model, *tokenizer, *data.train, data.valid.get(), data.spec, pg, adapter,
                  std::move(loss));
  if (ckpt)
    trainer.resume_from(*ckpt);
  else if (opts.resume)
    log_info("--resume: no checkpoint in {}; starting from step 0", cfg.run.dir);
  if (pg) pg->barrier();  // every rank has read the old checkpoint before rank 0 changes run.dir
  if (writes_files) {
    if (opts.overwrite)
      for (const char* n : {"checkpoints", "metrics.jsonl", "tb"})
        if (path_exists(join_path(cfg.run.dir, n))) remove_all(join_path(cfg.run.dir, n));
    make_dirs(cfg.run.dir);
    write_file_atomic(join_path(cfg.run.dir, "config.yaml"), config_to_yaml(cfg));
  }
  if (job.ready) job.ready(trainer, model, data, pg.get());
  return trainer.run();
}

}  // namespace reef
