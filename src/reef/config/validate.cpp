// Validation of a resolved config: ranges, allowed names and cross-field constraints, each
// failure one usage error naming the key, its value, where that value came from and what is
// expected. The model's own rules and derived values (resolved_*) come from the family, through
// the catalog models/ installs (model_rules.h).
#include <cmath>
#include <set>

#include "reef/base/error.h"
#include "reef/base/strings.h"
#include "reef/config/config.h"
#include "reef/config/fields.h"
#include "reef/config/model_rules.h"

namespace reef {

// The derived values come from the family that builds the model (models/<family>/), through the
// installed catalog, so every layer agrees on them.
std::string resolved_activation(const ModelConfig& m) {
  return model_catalog().derive(m).activation;
}
int64_t resolved_kv_heads(const ModelConfig& m) { return model_catalog().derive(m).n_kv_heads; }
int64_t resolved_head_dim(const ModelConfig& m) { return model_catalog().derive(m).head_dim; }
int64_t resolved_intermediate_size(const ModelConfig& m) {
  return model_catalog().derive(m).intermediate_size;
}
bool uses_rope(const ModelConfig& m) { return model_catalog().uses_rope(m); }

namespace {

using Checker = ConfigChecker;

bool is_device(const std::string& d) {
  if (d == "cpu" || d == "cuda") return true;
  if (d.compare(0, 5, "cuda:") != 0 || d.size() == 5) return false;
  return d.find_first_not_of("0123456789", 5) == std::string::npos;
}

void check_run(const RunConfig& r, const Checker& c) {
  if (r.dir.empty()) c.fail("run.dir", "a folder for the run", "''");
  if (!is_device(r.device)) c.fail("run.device", "cpu, cuda or cuda:N", "'" + r.device + "'");
  c.at_least("run.threads", r.threads, 0);
}

// The generic ranges here; the architecture's own rules (heads, RoPE, experts, what each HF
// architecture cannot express) are the family's, in models/<family>/, and come through the
// catalog: the same rules resolve_model_config runs, with the same messages.
void check_model(const ModelConfig& m, const Checker& c) {
  const ModelCatalog& catalog = model_catalog();
  if (!m.preset.empty() && catalog.presets.count(m.preset) == 0) {
    std::vector<std::string> names;
    for (const auto& [n, keys] : catalog.presets) names.push_back(n);
    c.one_of("model.preset", m.preset, names);
  }
  check_model_ranges(m, c);
  catalog.check(m, c);
}

void check_data(const DataConfig& d, const ModelConfig& m, const Checker& c) {
  for (const char* key :
       {"data.train_files", "data.valid_files", "data.blend", "data.valid_blend"}) {
    const std::string k(key);
    const auto& files = k == "data.train_files"   ? d.train_files
                        : k == "data.valid_files" ? d.valid_files
                        : k == "data.blend"       ? d.blend
                                                  : d.valid_blend;
    for (const auto& f : files)
      if (f.empty()) c.fail(key, "file paths", "an empty path");
  }
  if (!d.blend.empty() && !d.train_files.empty())
    c.fail("data.train_files",
           fmt::format("no training files when data.blend is set ({}): one source of training data",
                       c.ref("data.blend", "given")),
           fmt::format("{} file(s)", d.train_files.size()));
  if (!d.valid_blend.empty() && d.blend.empty())
    c.fail("data.valid_blend",
           "data.blend to be set too (or use data.valid_files with data.train_files)",
           "a validation blend alone");
  if (!d.valid_files.empty() && !d.blend.empty())
    c.fail("data.valid_files", "data.valid_blend with data.blend (indexed datasets, not documents)",
           fmt::format("{} file(s)", d.valid_files.size()));
  c.one_of("data.format", d.format, {"auto", "text", "jsonl"});
  if (d.text_key.empty()) c.fail("data.text_key", "the JSONL field holding the text", "''");
  c.in_unit_interval("data.valid_fraction", d.valid_fraction);
  c.at_least("data.seq_len", d.seq_len, 1);
  if (d.seq_len > m.max_seq_len && m.init_from.empty()) {  // with init_from: checked at start
    c.fail("data.seq_len",
           fmt::format("a value <= model.max_seq_len ({})",
                       c.ref("model.max_seq_len", std::to_string(m.max_seq_len))),
           std::to_string(d.seq_len));
  }
  const std::string& t = d.tokenizer;
  bool is_path = t.find('/') != std::string::npos || ends_with(t, ".json") ||
                 ends_with(t, ".model") || ends_with(t, ".tiktoken");
  if (t != "byte" && !is_path) {
    c.fail("data.tokenizer",
           "byte, or a path to a tokenizer.json, a SentencePiece .model, a .tiktoken file or a "
           "model folder",
           "'" + t + "'");
  }
}

void check_train(const TrainConfig& t, const Checker& c) {
  c.at_least("train.max_steps", t.max_steps, 1);
  c.at_least("train.micro_batch_size", t.micro_batch_size, 1);
  c.at_least("train.grad_accum", t.grad_accum, 1);
  c.at_least("train.clip_grad", t.clip_grad, 0.0);
  c.at_least("train.z_loss", t.z_loss, 0.0);
  c.one_of("train.precision", t.precision, {"fp32", "bf16"});
  c.at_least("train.eval_every", t.eval_every, 0);
  c.at_least("train.eval_batches", t.eval_batches, 1);
}

void check_optim(const OptimConfig& o, const Checker& c) {
  c.one_of("optim.name", o.name, {"adamw"});
  c.positive("optim.lr", o.lr);
  c.at_least("optim.min_lr", o.min_lr, 0.0);
  if (o.min_lr > o.lr) {
    c.fail("optim.min_lr",
           fmt::format("a value <= optim.lr ({})", c.ref("optim.lr", fmt::format("{}", o.lr))),
           fmt::format("{}", o.min_lr));
  }
  c.at_least("optim.weight_decay", o.weight_decay, 0.0);
  c.in_unit_interval("optim.beta1", o.beta1);
  c.in_unit_interval("optim.beta2", o.beta2);
  c.positive("optim.eps", o.eps);
  c.at_least("optim.warmup_steps", o.warmup_steps, 0);
  c.one_of("optim.schedule", o.schedule, {"cosine", "linear", "constant"});
}

void check_checkpoint_and_logging(const Config& cfg, const Checker& c) {
  c.at_least("checkpoint.every", cfg.checkpoint.every, 0);
  c.at_least("checkpoint.keep_last", cfg.checkpoint.keep_last, 0);
  c.one_of("checkpoint.layout", cfg.checkpoint.layout, {"auto", "consolidated", "distributed"});
  c.at_least("logging.every", cfg.logging.every, 1);
  c.one_of("logging.progress", cfg.logging.progress, {"auto", "on", "off"});
}

void check_finetune(const Config& cfg, const Checker& c) {
  c.one_of("data.overlong", cfg.data.overlong, {"drop", "truncate", "error"});
  const PeftConfig& p = cfg.peft;
  c.one_of("peft.method", p.method, {"none", "lora", "prompt_tuning"});
  c.at_least("peft.lora_r", p.lora_r, 1);
  c.positive("peft.lora_alpha", p.lora_alpha);
  c.at_least("peft.lora_dropout", p.lora_dropout, 0.0);
  if (p.lora_dropout >= 1.0)
    c.fail("peft.lora_dropout", "a value in [0, 1)", fmt::format("{}", p.lora_dropout));
  if (p.method == "lora" && p.target_modules.empty() && p.target_regex.empty())
    c.fail("peft.target_modules", "at least one module name (or peft.target_regex)", "[]");
  c.at_least("peft.num_virtual_tokens", p.num_virtual_tokens, 1);
  c.one_of("data.on_bad_row", cfg.data.on_bad_row, {"error", "skip"});
}

void check_dpo(const DpoConfig& d, const Checker& c) {
  c.one_of("dpo.loss_type", d.loss_type, {"sigmoid", "ipo", "hinge", "robust", "simpo"});
  c.positive("dpo.beta", d.beta);
  c.at_least("dpo.label_smoothing", d.label_smoothing, 0.0);
  if (d.label_smoothing >= 0.5)
    c.fail("dpo.label_smoothing", "a probability in [0, 0.5)",
           fmt::format("{}", d.label_smoothing));
  c.at_least("dpo.simpo_gamma", d.simpo_gamma, 0.0);
  c.at_least("dpo.rpo_alpha", d.rpo_alpha, 0.0);
  c.at_least("dpo.max_length", d.max_length, 0);
}

void check_grpo(const GrpoConfig& g, const Checker& c) {
  c.at_least("grpo.num_generations", g.num_generations, 2);
  c.at_least("grpo.max_completion_length", g.max_completion_length, 1);
  c.positive("grpo.temperature", g.temperature);
  c.positive("grpo.top_p", g.top_p);
  if (g.top_p > 1.0) c.fail("grpo.top_p", "a value in (0, 1]", fmt::format("{}", g.top_p));
  c.at_least("grpo.top_k", g.top_k, 0);
  c.one_of("grpo.loss_type", g.loss_type, {"grpo", "bnpo", "dr_grpo", "dapo"});
  c.one_of("grpo.importance_sampling_level", g.importance_sampling_level, {"token", "sequence"});
  c.positive("grpo.epsilon", g.epsilon);
  c.at_least("grpo.epsilon_high", g.epsilon_high, 0.0);
  c.at_least("grpo.beta", g.beta, 0.0);
  c.one_of("grpo.scale_rewards", g.scale_rewards, {"group", "batch", "none"});
  c.at_least("grpo.num_iterations", g.num_iterations, 1);
  c.at_least("grpo.steps_per_generation", g.steps_per_generation, 1);
  if (g.rewards.empty()) c.fail("grpo.rewards", "at least one environment", "[]");
  c.positive("grpo.env_timeout_s", g.env_timeout_s);
  c.at_least("grpo.env_retries", g.env_retries, 0);
  c.at_least("grpo.max_slots", g.max_slots, 0);
  c.at_least("grpo.kv_memory_mb", g.kv_memory_mb, 1);
}

void check_parallel(const ParallelConfig& p, const Checker& c) {
  c.at_least("parallel.dp", p.dp, 0);
  c.at_least("parallel.tp", p.tp, 1);
  c.at_least("parallel.pp", p.pp, 1);
  if (p.zero != 0 && p.zero != 1 && p.zero != 3)
    c.fail("parallel.zero", "0, 1 or 3 (ZeRO-2 is not supported; 3 shards the gradients too)",
           std::to_string(p.zero));
  c.positive("parallel.bucket_mb", p.bucket_mb);
  c.at_least("parallel.timeout_s", p.timeout_s, 1);
  c.one_of("parallel.backend", p.backend, {"auto", "gloo", "nccl"});
}

}  // namespace

void validate_config(const Config& cfg, const std::map<std::string, std::string>& origin) {
  Checker c(origin);
  // NaN and infinities pass every range check unnoticed, so they are refused up front.
  for (const auto& f : config_detail::fields_of(cfg)) {
    if (f.type != config_detail::FieldType::kDouble) continue;
    double v = *static_cast<const double*>(f.ptr);
    if (!std::isfinite(v)) c.fail(f.key, "a finite number", config_detail::format_double(v));
  }
  check_run(cfg.run, c);
  check_model(cfg.model, c);
  check_data(cfg.data, cfg.model, c);
  check_train(cfg.train, c);
  check_optim(cfg.optim, c);
  check_checkpoint_and_logging(cfg, c);
  check_parallel(cfg.parallel, c);
  // Every pipeline stage needs a decoder layer (a model folder's depth is checked when read).
  if (cfg.parallel.pp > cfg.model.n_layers && cfg.model.n_layers > 0 && cfg.model.init_from.empty())
    usage_error(
        "parallel.pp={} ({}): the model has model.n_layers={} decoder layers and every pipeline "
        "stage needs at least one; use parallel.pp <= {}",
        cfg.parallel.pp, c.from("parallel.pp"), cfg.model.n_layers, cfg.model.n_layers);
  // ZeRO-3 shards whole flat units over the dp ranks; tp slices and pipeline stages do not combine.
  if (cfg.parallel.zero == 3 &&
      (cfg.parallel.tp > 1 || cfg.parallel.pp > 1 || cfg.peft.method != "none"))
    usage_error(
        "parallel.zero=3 ({}) (FSDP) shards parameters over data-parallel ranks only; it does not "
        "combine with parallel.tp={}, parallel.pp={} or peft.method={} (got {}); use parallel.tp=1 "
        "parallel.pp=1 peft.method=none, or parallel.zero=1",
        c.from("parallel.zero"), cfg.parallel.tp, cfg.parallel.pp,
        cfg.peft.method == "none" ? "lora/prompt_tuning" : cfg.peft.method,
        cfg.parallel.tp > 1   ? c.ref("parallel.tp", std::to_string(cfg.parallel.tp))
        : cfg.parallel.pp > 1 ? c.ref("parallel.pp", std::to_string(cfg.parallel.pp))
                              : c.ref("peft.method", cfg.peft.method));
  if (cfg.parallel.tp > 1 && cfg.peft.method != "none")
    usage_error(
        "parallel.tp={} ({}): peft.method={} ({}) is not supported with tensor parallelism; use "
        "parallel.tp=1 (data parallelism works)",
        cfg.parallel.tp, c.from("parallel.tp"), cfg.peft.method, c.from("peft.method"));
  if (cfg.parallel.pp > 1 && cfg.peft.method != "none")
    usage_error(
        "parallel.pp={} ({}): peft.method={} ({}) is not supported with pipeline parallelism; use "
        "parallel.pp=1 (data parallelism works)",
        cfg.parallel.pp, c.from("parallel.pp"), cfg.peft.method, c.from("peft.method"));
  // tp x pp checkpoints are always distributed: no rank holds a whole stage to gather.
  if (cfg.parallel.tp > 1 && cfg.parallel.pp > 1 && cfg.checkpoint.layout == "consolidated")
    usage_error(
        "checkpoint.layout=consolidated ({}): with parallel.tp={} and parallel.pp={} together "
        "checkpoints are distributed; use checkpoint.layout=auto (reef convert consolidates one)",
        c.from("checkpoint.layout"), cfg.parallel.tp, cfg.parallel.pp);
  // Sequence parallelism splits each sample's tokens evenly over the tp ranks.
  if (cfg.parallel.sequence_parallel && cfg.parallel.tp > 1 &&
      cfg.data.seq_len % cfg.parallel.tp != 0)
    usage_error(
        "parallel.sequence_parallel=true: data.seq_len={} is not divisible by parallel.tp={}, and "
        "each "
        "tensor-parallel rank holds an equal slice of the sequence (data.seq_len from {}, "
        "parallel.sequence_parallel from {}); set data.seq_len={} or "
        "parallel.sequence_parallel=false",
        cfg.data.seq_len, cfg.parallel.tp, c.from("data.seq_len"),
        c.from("parallel.sequence_parallel"), cfg.data.seq_len / cfg.parallel.tp * cfg.parallel.tp);
  check_finetune(cfg, c);
  check_dpo(cfg.dpo, c);
  check_grpo(cfg.grpo, c);
  c.at_least("rm.center_rewards_coefficient", cfg.rm.center_rewards_coefficient, 0.0);
}

}  // namespace reef
