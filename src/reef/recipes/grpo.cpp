// Implementation of recipes/grpo.h.
#include "reef/recipes/grpo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "reef/align/environment.h"
#include "reef/align/grpo_loss.h"
#include "reef/align/rollouts.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/hash.h"
#include "reef/base/json_file.h"
#include "reef/base/log.h"
#include "reef/data/prompts.h"
#include "reef/models/lora.h"
#include "reef/nn/init.h"
#include "reef/recipes/training.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What the hooks of one run share.
struct GrpoRun {
  Config cfg;
  const Tokenizer* tokenizer = nullptr;
  std::vector<PromptRow> prompts;
  RolloutRows* rows = nullptr;  // the training source (owned by TrainingData)
  std::unique_ptr<RewardSet> rewards;
  CausalLM reference{nullptr};  // full-weight runs with beta > 0
  int64_t rows_per_step = 0, batch_rows = 0, prompts_per_batch = 0, steps_per_batch = 0;
  int32_t pad_id = 0;
  int64_t loaded_batch = -1;  // the generation batch the source holds
  size_t ref_offset = 0;      // where the reference log-probs start in a row's values

  bool old_logps() const {
    return cfg.grpo.num_iterations > 1 || cfg.grpo.steps_per_generation > 1;
  }
  int64_t n_values() const {
    return 1 + (old_logps() ? cfg.data.seq_len : 0) + (cfg.grpo.beta != 0 ? cfg.data.seq_len : 0);
  }

  // The prompts of generation batch b: consecutive in an order reshuffled every epoch.
  std::vector<size_t> batch_prompts(int64_t b) const {
    std::vector<size_t> out;
    const auto N = static_cast<int64_t>(prompts.size());
    std::vector<size_t> order;
    int64_t epoch = -1;
    for (int64_t k = b * prompts_per_batch; k < (b + 1) * prompts_per_batch; ++k) {
      if (k / N != epoch) {
        epoch = k / N;
        order.resize(static_cast<size_t>(N));
        std::iota(order.begin(), order.end(), size_t{0});
        std::mt19937_64 rng(static_cast<uint64_t>(cfg.run.seed) * 1000003ULL +
                            static_cast<uint64_t>(epoch));
        std::shuffle(order.begin(), order.end(), rng);
      }
      out.push_back(order[static_cast<size_t>(k % N)]);
    }
    return out;
  }

  uint64_t seed_of(int64_t b, size_t j) const {
    uint64_t parts[3] = {static_cast<uint64_t>(cfg.run.seed), static_cast<uint64_t>(b),
                         static_cast<uint64_t>(j)};
    return xxh64(parts, sizeof(parts)) >> 1;  // the engine adds the sequence index
  }

  std::string batch_path(int64_t b) const {
    return join_path(join_path(cfg.run.dir, "rollouts"), fmt::format("batch_{:06d}.jsonl", b));
  }

  std::map<std::string, double> before_step(int64_t step, CausalLM& model);
  std::map<std::string, double> generate(int64_t b, CausalLM& model);
  bool load(int64_t b);
};

bool GrpoRun::load(int64_t b) {
  const std::string path = batch_path(b);
  if (!path_exists(path)) return false;
  std::vector<RolloutRow> out;
  for_each_jsonl_record(path, [&](ojson r, const std::string& source) {
    RolloutRow row;
    try {
      row.tokens = r.at("tokens").get<std::vector<int32_t>>();
      row.prompt_len = r.at("prompt_len").get<int64_t>();
      row.counted = r.at("counted").get<bool>();
      row.values = r.at("values").get<std::vector<float>>();
    } catch (const nlohmann::json::exception& e) {
      usage_error("{}: not a rollout record of this run: {}", source, e.what());
    }
    out.push_back(std::move(row));
    return true;
  });
  if (static_cast<int64_t>(out.size()) != batch_rows)
    usage_error("{}: {} rollouts, this run's generation batch has {}", path, out.size(),
                batch_rows);
  rows->batch() = std::move(out);
  log_info("grpo: generation batch {} read back from {}", b, path);
  return true;
}

std::map<std::string, double> GrpoRun::generate(int64_t b, CausalLM& model) {
  const GrpoConfig& g = cfg.grpo;
  std::map<std::string, double> m;
  const auto t_gen = Clock::now();
  const std::vector<size_t> which = batch_prompts(b);
  std::vector<std::vector<int32_t>> ids;
  std::vector<uint64_t> seeds;
  for (size_t j = 0; j < which.size(); ++j) {
    ids.push_back(prompts[which[j]].ids);
    seeds.push_back(seed_of(b, j));
  }
  RolloutOptions ro;
  ro.group = g.num_generations;
  ro.sampling.temperature = g.temperature;
  ro.sampling.top_k = g.top_k;
  ro.sampling.top_p = g.top_p;
  ro.sampling.max_new_tokens = g.max_completion_length;
  ro.sampling.stop = g.stop;
  ro.engine.max_slots = g.max_slots;
  ro.engine.kv_memory_bytes = g.kv_memory_mb << 20;
  std::vector<Completion> done = generate_completions(model, *tokenizer, ids, seeds, ro);
  model->train();
  m["time/generation_s"] = seconds_since(t_gen);

  // Score.
  const auto t_score = Clock::now();
  std::vector<Rollout> rollouts;
  for (size_t k = 0; k < done.size(); ++k) {
    const PromptRow& p = prompts[which[k / static_cast<size_t>(g.num_generations)]];
    Rollout r;
    r.prompt = p.text;
    r.messages = p.messages;
    r.completion = done[k].text;
    r.metadata = p.metadata;
    r.truncated = done[k].truncated;
    rollouts.push_back(std::move(r));
  }
  Rewards rw = rewards->score(rollouts);
  std::vector<bool> zero_std;
  std::vector<double> adv =
      group_advantages(rw.total, g.num_generations, g.scale_rewards, &zero_std);
  m["time/scoring_s"] = seconds_since(t_score);

  // Rows.
  std::vector<RolloutRow>& out = rows->batch();
  out.clear();
  double len_sum = 0, len_min = 1e300, len_max = 0, truncated = 0, zero = 0;
  for (size_t k = 0; k < done.size(); ++k) {
    const PromptRow& p = prompts[which[k / static_cast<size_t>(g.num_generations)]];
    RolloutRow row;
    row.tokens = p.ids;
    row.tokens.insert(row.tokens.end(), done[k].tokens.begin(), done[k].tokens.end());
    row.prompt_len = static_cast<int64_t>(p.ids.size());
    row.counted = !std::isnan(rw.total[k]) && !done[k].tokens.empty() &&
                  !(g.mask_truncated_completions && done[k].truncated);
    row.values.assign(static_cast<size_t>(n_values()), 0.0f);
    row.values[0] = static_cast<float>(adv[k]);
    out.push_back(std::move(row));
    const auto n = static_cast<double>(done[k].tokens.size());
    len_sum += n;
    len_min = std::min(len_min, n);
    len_max = std::max(len_max, n);
    truncated += done[k].truncated ? 1 : 0;
    zero += zero_std[k] ? 1 : 0;
  }
  const auto t_logps = Clock::now();
  const bool bf16 = cfg.train.precision == "bf16";
  if (old_logps())
    fill_token_logps(model, out, cfg.data.seq_len, pad_id, cfg.train.micro_batch_size,
                     g.temperature, 1, bf16);
  if (g.beta != 0) {
    if (reference) {
      fill_token_logps(reference, out, cfg.data.seq_len, pad_id, cfg.train.micro_batch_size,
                       g.temperature, ref_offset, bf16);
    } else {
      LoraDisabled off(model);  // the base weights alone
      fill_token_logps(model, out, cfg.data.seq_len, pad_id, cfg.train.micro_batch_size,
                       g.temperature, ref_offset, bf16);
    }
  }
  if (old_logps() || g.beta != 0) m["time/logps_s"] = seconds_since(t_logps);

  // Metrics, TRL's names.
  const auto n = static_cast<double>(done.size());
  auto mean_std = [&](const std::string& mean_key, const std::string& std_key,
                      const std::vector<double>& values) {
    const double mean = nan_mean(values), sd = nan_std(values, mean);
    m[mean_key] = mean;
    m[std_key] = std::isnan(sd) ? 0.0 : sd;
  };
  mean_std("reward", "reward_std", rw.total);
  for (const auto& [name, values] : rw.per_environment)
    mean_std("rewards/" + name + "/mean", "rewards/" + name + "/std", values);
  m["completions/mean_length"] = len_sum / n;
  m["completions/min_length"] = len_min;
  m["completions/max_length"] = len_max;
  m["completions/clipped_ratio"] = truncated / n;
  m["frac_reward_zero_std"] = zero / n;
  m["dropped"] = static_cast<double>(rw.dropped);
  if (rw.dropped > 0)
    log_warn("grpo: {} of {} completions of generation batch {} could not be scored (dropped)",
             rw.dropped, done.size(), b);

  if (g.save_rollouts) {
    std::string text;
    for (size_t k = 0; k < done.size(); ++k) {
      const PromptRow& p = prompts[which[k / static_cast<size_t>(g.num_generations)]];
      ojson rec;
      rec["batch"] = b;
      rec["prompt_source"] = p.source;
      rec["prompt"] = p.text;
      rec["completion"] = done[k].text;
      rec["reward"] = std::isnan(rw.total[k]) ? ojson() : ojson(rw.total[k]);
      ojson per = ojson::object();
      for (const auto& [name, values] : rw.per_environment)
        per[name] = std::isnan(values[k]) ? ojson() : ojson(values[k]);
      rec["rewards"] = per;
      rec["advantage"] = adv[k];
      rec["truncated"] = done[k].truncated;
      rec["seed"] = seed_of(b, k / static_cast<size_t>(g.num_generations));
      rec["tokens"] = out[k].tokens;
      rec["prompt_len"] = out[k].prompt_len;
      rec["counted"] = out[k].counted;
      rec["values"] = out[k].values;
      text += rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    make_dirs(join_path(cfg.run.dir, "rollouts"));
    write_file_atomic(batch_path(b), text);
  }
  return m;
}

std::map<std::string, double> GrpoRun::before_step(int64_t step, CausalLM& model) {
  const int64_t b = step / steps_per_batch;
  std::map<std::string, double> m;
  if (b != loaded_batch) {
    // A resume in the middle of a batch reads it back; a new batch is generated.
    if (step % steps_per_batch == 0 || !load(b)) {
      if (step % steps_per_batch != 0)
        log_warn(
            "grpo: generation batch {} was not saved; generating it again from the "
            "current weights",
            b);
      m = generate(b, model);
    }
    loaded_batch = b;
  }
  // Iteration i of the batch's num_iterations passes takes its slices in order.
  const int64_t k = step % steps_per_batch;
  rows->set_step(step, k % cfg.grpo.steps_per_generation);
  return m;
}

}  // namespace

TrainResult run_grpo(const ResolvedConfig& rc, const PretrainOptions& opts) {
  const Config& cfg = rc.config;
  const GrpoConfig& g = cfg.grpo;
  const std::string& method = cfg.peft.method;
  if (method != "none" && method != "lora")
    usage_error(
        "peft.method={} ({}): reef align grpo trains every weight or a LoRA adapter; use "
        "peft.method=none or lora",
        method, rc.from("peft.method"));
  const ParallelConfig& p = cfg.parallel;
  if (p.tp > 1 || p.pp > 1 || p.zero == 3 || p.dp > 1)
    usage_error(
        "parallel (tp={} pp={} zero={} dp={}): reef align grpo generates with the engine on "
        "this process's whole model; run it as one process (data parallelism is not built yet)",
        p.tp, p.pp, p.zero, p.dp);
  if (cfg.train.eval_every > 0)
    usage_error(
        "train.eval_every={} ({}): reef align grpo has no validation loss; evaluate checkpoints "
        "with reef eval, or set train.eval_every=0",
        cfg.train.eval_every, rc.from("train.eval_every"));
  const int64_t rows_per_step = cfg.train.micro_batch_size * cfg.train.grad_accum;
  const int64_t batch_rows = rows_per_step * g.steps_per_generation;
  if (batch_rows % g.num_generations != 0)
    usage_error(
        "grpo.num_generations={} ({}) must divide the generation batch: train.micro_batch_size "
        "x train.grad_accum x grpo.steps_per_generation = {}",
        g.num_generations, rc.from("grpo.num_generations"), batch_rows);
  if (cfg.data.seq_len <= g.max_completion_length)
    usage_error(
        "data.seq_len={} ({}) must exceed grpo.max_completion_length={}: a row holds the prompt "
        "and its completion",
        cfg.data.seq_len, rc.from("data.seq_len"), g.max_completion_length);
  {
    // The environments' settings are checked before anything is read or written.
    RewardSet check(g);
  }

  auto run = std::make_shared<GrpoRun>();
  run->cfg = cfg;
  run->rows_per_step = rows_per_step;
  run->batch_rows = batch_rows;
  run->prompts_per_batch = batch_rows / g.num_generations;
  run->steps_per_batch = g.steps_per_generation * g.num_iterations;
  run->ref_offset = 1 + (run->old_logps() ? static_cast<size_t>(cfg.data.seq_len) : 0);

  TrainingJob job;
  job.command = "align grpo";
  job.needs_model_folder = true;
  job.peft = true;
  job.initial_weights_on_resume = g.beta != 0;
  job.data = [run](const ResolvedConfig& r, const Tokenizer& tok, const std::string& dir) {
    const Config& c = r.config;
    if (c.data.train_files.empty())
      usage_error(
          "data.train_files: reef align grpo needs prompt JSONL files (lines of {{\"prompt\": "
          "...}} or {{\"messages\": [...]}}, with \"metadata\" for the rewards)");
    run->tokenizer = &tok;
    run->pad_id = tok.pad_id() >= 0 ? tok.pad_id() : std::max(0, tok.eos_id());
    std::string template_used;
    ChatTemplate tmpl = data_chat_template(c.data, dir, &template_used);
    const int64_t longest = c.data.seq_len + 1 - c.grpo.max_completion_length;
    int64_t overlong = 0;
    uint64_t h = xxh64("grpo-prompts-v1");
    for (const auto& f : c.data.train_files) {
      PromptFile file = read_prompt_jsonl(f, tok, tmpl, c.data.on_bad_row == "skip");
      if (file.skipped > 0)
        log_warn("data: {} bad rows of {} skipped (data.on_bad_row=skip); the first: {}",
                 file.skipped, f, file.first_skip_reason);
      for (auto& row : file.rows) {
        if (static_cast<int64_t>(row.ids.size()) > longest) {
          if (c.data.overlong == "error")
            usage_error(
                "{}: the prompt has {} tokens; with grpo.max_completion_length={} a row of "
                "data.seq_len={} holds {} at most: raise data.seq_len or set data.overlong=drop",
                row.source, row.ids.size(), c.grpo.max_completion_length, c.data.seq_len, longest);
          ++overlong;
          continue;
        }
        uint64_t parts[3] = {h, xxh64(row.ids.data(), row.ids.size() * sizeof(int32_t)),
                             xxh64(row.metadata.dump())};
        h = xxh64(parts, sizeof(parts));
        run->prompts.push_back(std::move(row));
      }
    }
    if (overlong > 0)
      log_warn("data: {} prompts longer than {} tokens dropped (data.overlong=drop)", overlong,
               longest);
    if (run->prompts.empty()) usage_error("data.train_files: no prompts");
    log_info("data: {} prompts; {} per generation batch, {} completions each", run->prompts.size(),
             run->prompts_per_batch, c.grpo.num_generations);
    // The rows depend on the prompts, the sampling, the environments and the seed.
    const std::string key =
        fmt::format("grpo-rows-v1 {} {} {} {} {} {} {} {} {} {}", c.data.seq_len, c.run.seed,
                    c.grpo.num_generations, c.grpo.max_completion_length, c.grpo.temperature,
                    c.grpo.top_p, c.grpo.top_k, fmt::join(c.grpo.stop, "\x1f"),
                    fmt::join(c.grpo.rewards, ","), run->batch_rows);
    uint64_t parts[2] = {h, xxh64(key)};
    auto rows = std::make_unique<RolloutRows>(c.data.seq_len, run->pad_id,
                                              c.train.max_steps * run->rows_per_step,
                                              run->rows_per_step, xxh64(parts, sizeof(parts)));
    run->rows = rows.get();
    TrainingData td;
    td.train = std::move(rows);
    td.spec = {{"train_files", c.data.train_files},
               {"seq_len", c.data.seq_len},
               {"chat_template", template_used},
               {"num_generations", c.grpo.num_generations},
               {"rewards", c.grpo.rewards}};
    return td;
  };
  job.prepare = [run](const Config& c, CausalLM& model, TrainingData&, ProcessGroup*) {
    run->rewards = std::make_unique<RewardSet>(c.grpo);
    if (c.grpo.beta != 0 && c.peft.method == "none") {
      // The reference: a frozen copy of the initial weights.
      SkipInitGuard skip;
      run->reference = CausalLM(model->config());
      torch::NoGradGuard ng;
      auto src = model->named_parameters(true);
      for (auto& item : run->reference->named_parameters(true)) {
        item.value().copy_(src[item.key()]);
        item.value().set_requires_grad(false);
      }
      auto bsrc = model->named_buffers(true);
      for (auto& item : run->reference->named_buffers(true)) item.value().copy_(bsrc[item.key()]);
      run->reference->to(model->parameters().front().device());
      run->reference->eval();
    }
    GrpoLossOptions o;
    o.cfg = c.grpo;
    o.seq_len = c.data.seq_len;
    o.old_logps = run->old_logps();
    o.router_aux_coef = model->config().n_experts > 0 && model->config().output_router_logits
                            ? model->config().router_aux_loss_coef
                            : 0.0;
    return make_grpo_loss(o);
  };
  job.ready = [run](Trainer& trainer, CausalLM& model, TrainingData&, ProcessGroup*) {
    CausalLM m = model;
    trainer.set_before_step([run, m](int64_t step) mutable { return run->before_step(step, m); });
  };
  return run_training(rc, opts, job);
}

}  // namespace reef
