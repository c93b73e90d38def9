// Implementation of eval/evaluator.h.
#include "reef/eval/evaluator.h"

#include <chrono>
#include <cmath>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/progress.h"
#include "reef/eval/metrics.h"
#include "reef/eval/task_template.h"

namespace reef::eval {
namespace {

using json = nlohmann::json;

bool higher_is_better(const std::string& metric) {
  return !(metric == "perplexity" || metric == "word_perplexity" || metric == "byte_perplexity" ||
           metric == "bits_per_byte");
}

ProgressFn make_progress(ProgressBar& bar) {
  return [&bar](int64_t done) { bar.update(done, ""); };
}

void add_mean(json& metrics, const std::string& key, const std::string& filter,
              const std::vector<double>& xs) {
  Aggregate a = aggregate_mean(xs);
  metrics[key + "," + filter] = a.value;
  metrics[key + "_stderr," + filter] = a.stderr_ >= 0 ? json(a.stderr_) : json("N/A");
}

}  // namespace

std::optional<double> parse_judge_score(const JudgeConfig& cfg, const std::string& reply) {
  PyRegex re(cfg.score_regex, "judge.score_regex");
  auto m = re.findall(reply);
  if (m.empty()) return std::nullopt;
  try {
    double v = std::stod(m[0][0]);
    return std::min(cfg.max_score, std::max(cfg.min_score, v));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

TaskOutcome evaluate_task(Task& task, LanguageModel& model, const EvalOptions& opts) {
  const TaskConfig& cfg = task.config();
  TaskOutcome out;
  const auto& all_docs = task.eval_docs();
  out.n_original = static_cast<int64_t>(all_docs.size());
  int64_t n = out.n_original;
  if (opts.limit >= 0)
    n = opts.limit < 1.0 ? static_cast<int64_t>(std::ceil(out.n_original * opts.limit))
                         : std::min<int64_t>(n, static_cast<int64_t>(opts.limit));
  out.n_effective = n;
  out.num_fewshot = opts.num_fewshot ? *opts.num_fewshot : cfg.num_fewshot.value_or(0);
  if (out.num_fewshot < 0) usage_error("--num-fewshot must be >= 0, got {}", out.num_fewshot);
  task.set_fewshot_seed(opts.fewshot_seed);

  std::vector<std::string> contexts;
  for (int64_t i = 0; i < n; ++i)
    contexts.push_back(task.fewshot_context(all_docs[i], out.num_fewshot));

  ProgressBar bar(cfg.task, n, opts.progress, std::max<int64_t>(1, n / 10));
  const auto& docs = all_docs;
  for (int64_t i = 0; i < n; ++i)
    out.samples.push_back({{"doc_id", i}, {"doc", docs[i]}, {"prompt", contexts[i]}});

  if (cfg.output_type == OutputType::kMultipleChoice ||
      cfg.output_type == OutputType::kLoglikelihood) {
    std::vector<std::pair<std::string, std::string>> reqs;
    std::vector<size_t> first(n + 1);
    for (int64_t i = 0; i < n; ++i) {
      first[i] = reqs.size();
      for (auto& r : task.construct_requests(docs[i], contexts[i]))
        reqs.emplace_back(r.context, r.continuation);
    }
    first[n] = reqs.size();
    // Progress counts documents: map finished requests back to documents.
    int64_t doc_done = 0;
    auto res = model.loglikelihood(reqs, [&](int64_t done) {
      while (doc_done < n && first[doc_done + 1] <= static_cast<size_t>(done)) ++doc_done;
      bar.update(doc_done, "");
    });
    std::map<std::string, std::vector<double>> per;
    for (int64_t i = 0; i < n; ++i) {
      json& s = out.samples[i];
      std::vector<double> lls;
      std::vector<bool> greedy;
      for (size_t r = first[i]; r < first[i + 1]; ++r) {
        lls.push_back(res[r].logprob);
        greedy.push_back(res[r].is_greedy);
      }
      s["loglikelihoods"] = lls;
      json m = json::object();
      if (cfg.output_type == OutputType::kLoglikelihood) {
        s["target"] = reqs[first[i]].second;
        s["prediction"] = greedy[0] ? "greedy" : "not greedy";
        per["perplexity"].push_back(lls[0]);
        per["acc"].push_back(greedy[0] ? 1.0 : 0.0);
        m["loglikelihood"] = lls[0];
        m["acc"] = greedy[0] ? 1.0 : 0.0;
      } else {
        auto choices = task.doc_to_choice(docs[i]);
        const int64_t gold = task.gold_index(docs[i]);
        std::vector<double> by_char, by_byte;
        for (size_t c = 0; c < choices.size(); ++c) {
          by_char.push_back(lls[c] / static_cast<double>(count_chars(choices[c])));
          by_byte.push_back(lls[c] / static_cast<double>(choices[c].size()));
        }
        const int64_t pred = argmax(lls), pred_norm = argmax(by_char), pred_byte = argmax(by_byte);
        s["choices"] = choices;
        s["target"] = gold >= 0 ? json(choices[static_cast<size_t>(gold)]) : json(nullptr);
        s["gold"] = gold;
        s["prediction"] = choices[static_cast<size_t>(pred)];
        m["acc"] = pred == gold ? 1.0 : 0.0;
        m["acc_norm"] = pred_norm == gold ? 1.0 : 0.0;
        m["acc_bytes"] = pred_byte == gold ? 1.0 : 0.0;
        m["exact_match"] = gold >= 0 && greedy[static_cast<size_t>(gold)] ? 1.0 : 0.0;
        for (const char* k : {"acc", "acc_norm", "acc_bytes", "exact_match"})
          per[k].push_back(m[k].get<double>());
      }
      s["metrics"] = m;
    }
    for (const auto& mc : cfg.metrics) {
      if (mc.metric == "perplexity") {
        if (cfg.output_type != OutputType::kLoglikelihood)
          usage_error("task {}: metric perplexity needs output_type loglikelihood", cfg.task);
        out.metrics["perplexity,none"] = perplexity(per["perplexity"]);
        out.metrics["perplexity_stderr,none"] = "N/A";
      } else if (per.count(mc.metric)) {
        add_mean(out.metrics, mc.metric, "none", per[mc.metric]);
      } else {
        usage_error("task {}: metric {} does not apply to output_type {}", cfg.task, mc.metric,
                    output_type_name(cfg.output_type));
      }
    }
  } else if (cfg.output_type == OutputType::kLoglikelihoodRolling) {
    std::vector<std::string> texts;
    for (int64_t i = 0; i < n; ++i)
      texts.push_back(task.construct_requests(docs[i], contexts[i])[0].text);
    auto lls = model.loglikelihood_rolling(texts, make_progress(bar));
    std::vector<double> words, bytes;
    for (int64_t i = 0; i < n; ++i) {
      words.push_back(static_cast<double>(count_words(texts[i])));
      bytes.push_back(static_cast<double>(texts[i].size()));
      json& s = out.samples[i];
      s["prompt"] = "";
      s["target"] = texts[i];
      s["prediction"] = nullptr;
      s["metrics"] = {{"loglikelihood", lls[i]}, {"words", words.back()}, {"bytes", bytes.back()}};
    }
    for (const auto& mc : cfg.metrics) {
      if (mc.metric == "word_perplexity")
        out.metrics["word_perplexity,none"] = weighted_perplexity(lls, words);
      else if (mc.metric == "byte_perplexity")
        out.metrics["byte_perplexity,none"] = weighted_perplexity(lls, bytes);
      else if (mc.metric == "bits_per_byte")
        out.metrics["bits_per_byte,none"] = bits_per_byte(lls, bytes);
      else
        usage_error("task {}: metric {} does not apply to loglikelihood_rolling", cfg.task,
                    mc.metric);
      out.metrics[mc.metric + "_stderr,none"] = "N/A";
    }
  } else {  // generate_until, judge
    std::vector<GenerateRequest> reqs;
    for (int64_t i = 0; i < n; ++i) reqs.push_back({contexts[i], task.until(), cfg.max_gen_toks});
    auto gens = model.generate_until(reqs, make_progress(bar));
    std::map<std::string, std::vector<double>> per;  // "metric,filter" -> scores
    for (int64_t i = 0; i < n; ++i) {
      json& s = out.samples[i];
      const std::string target = task.target_text(docs[i]);
      s["target"] = target;
      s["prediction"] = gens[i];
      json filtered = json::object(), m = json::object();
      for (const auto& f : cfg.filters) {
        const std::string pred = apply_filter(f, gens[i]);
        filtered[f.name] = pred;
        for (const auto& mc : cfg.metrics) {
          double score = 0;
          if (mc.metric == "exact_match") {
            score = exact_match(mc, pred, target);
          } else if (mc.metric == "judge_score") {
            if (cfg.output_type != OutputType::kJudge)
              usage_error("task {}: metric judge_score needs output_type judge", cfg.task);
            if (!opts.judge) usage_error("task {}: a judge task needs --judge-endpoint", cfg.task);
            json vars = docs[i];
            vars["prediction"] = pred;
            vars["target"] = target;
            vars["prompt"] = contexts[i];
            const std::string user =
                render_template(cfg.judge.rubric, vars, "task " + cfg.task + ": judge.rubric");
            const std::string reply = opts.judge(cfg.judge.system_prompt, user);
            auto parsed = parse_judge_score(cfg.judge, reply);
            s["judge_prompt"] = user;
            s["judge_reply"] = reply;
            if (!parsed)
              log_warn("task {} doc {}: no score in the judge's reply; scored {}", cfg.task, i,
                       cfg.judge.min_score);
            score = parsed.value_or(cfg.judge.min_score);
          } else {
            usage_error("task {}: metric {} does not apply to {}", cfg.task, mc.metric,
                        output_type_name(cfg.output_type));
          }
          m[mc.metric + "," + f.name] = score;
          per[mc.metric + "," + f.name].push_back(score);
        }
      }
      s["filtered"] = filtered;
      s["metrics"] = m;
    }
    for (const auto& f : cfg.filters)
      for (const auto& mc : cfg.metrics)
        add_mean(out.metrics, mc.metric, f.name, per[mc.metric + "," + f.name]);
  }
  bar.finish();
  return out;
}

json evaluate(std::vector<Task>& tasks, LanguageModel& model, const EvalOptions& opts,
              const std::string& output_dir) {
  const auto start = std::chrono::steady_clock::now();
  json results = {{"results", json::object()},   {"configs", json::object()},
                  {"versions", json::object()},  {"n-shot", json::object()},
                  {"n-samples", json::object()}, {"higher_is_better", json::object()}};
  std::vector<std::pair<std::string, std::vector<json>>> samples;
  for (auto& task : tasks) {
    const std::string& name = task.name();
    if (results["results"].contains(name)) usage_error("--tasks: '{}' is listed twice", name);
    TaskOutcome o = evaluate_task(task, model, opts);
    json r = {{"alias", name}};
    r.update(o.metrics);
    results["results"][name] = r;
    results["configs"][name] = task.config().raw;
    results["versions"][name] = task.config().version;
    results["n-shot"][name] = o.num_fewshot;
    results["n-samples"][name] = {{"original", o.n_original}, {"effective", o.n_effective}};
    json hib = json::object();
    for (const auto& mc : task.config().metrics) hib[mc.metric] = higher_is_better(mc.metric);
    results["higher_is_better"][name] = hib;
    samples.emplace_back(name, std::move(o.samples));
  }
  results["config"] = opts.run_config;
  results["config"]["model"] = model.describe();
  results["config"]["fewshot_seed"] = opts.fewshot_seed;
  results["total_evaluation_time_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!output_dir.empty()) {
    make_dirs(output_dir);
    for (const auto& [name, rows] : samples) {
      std::string text;
      for (const auto& row : rows)
        text += row.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      write_file_atomic(join_path(output_dir, "samples_" + name + ".jsonl"), text);
    }
    write_file_atomic(join_path(output_dir, "results.md"), results_markdown(results));
    write_file_atomic(join_path(output_dir, "results.json"),
                      results.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  }
  return results;
}

std::string results_markdown(const json& results) {
  std::string md = "|Tasks|Version|Filter|n-shot|Metric|   |Value|   |Stderr|\n";
  md += "|-----|------:|------|-----:|------|---|----:|---|-----:|\n";
  for (auto it = results["results"].begin(); it != results["results"].end(); ++it) {
    const std::string& task = it.key();
    const json& hib = results["higher_is_better"].value(task, json::object());
    std::string version = fmt::format("{}", results["versions"].value(task, 1.0));
    bool first = true;
    for (auto m = it->begin(); m != it->end(); ++m) {
      const std::string& key = m.key();
      auto comma = key.find(',');
      if (comma == std::string::npos || key.find("_stderr,") != std::string::npos) continue;
      const std::string metric = key.substr(0, comma), filter = key.substr(comma + 1);
      const json& se = it->value(metric + "_stderr," + filter, json("N/A"));
      const std::string arrow = hib.contains(metric) ? (hib[metric].get<bool>() ? "↑" : "↓") : " ";
      md += fmt::format(
          "|{}|{}|{}|{}|{}|{}|{:.4f}|±|{}|\n", first ? task : "", first ? version : "", filter,
          first ? std::to_string(results["n-shot"].value(task, 0)) : "", metric, arrow,
          m->get<double>(), se.is_number() ? fmt::format("{:.4f}", se.get<double>()) : "N/A");
      first = false;
    }
  }
  return md;
}

}  // namespace reef::eval
