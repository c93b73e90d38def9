// Implementation of eval/task.h: task YAML loading, documents, few-shot contexts and requests,
// following lm-evaluation-harness 0.4's ConfigurableTask.
#include "reef/eval/task.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/strings.h"
#include "reef/eval/builtin_tasks.h"
#include "reef/eval/task_template.h"

namespace reef::eval {
namespace {

using json = nlohmann::json;

json yaml_to_json(const YAML::Node& n, const std::string& where) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& x : n) a.push_back(yaml_to_json(x, where));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second, where);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!function")
        usage_error(
            "{} (line {}): '!function {}' is a Python function, which Reef cannot run; "
            "preprocess the JSONL instead (see docs/eval.md)",
            where, n.Mark().line + 1, s);
      if (n.Tag() == "!") return s;  // quoted
      static const std::regex int_re("[-+]?[0-9]+"),
          float_re("[-+]?([0-9]*\\.[0-9]+|[0-9]+\\.?[0-9]*)([eE][-+]?[0-9]+)?");
      if (std::regex_match(s, int_re)) return static_cast<int64_t>(std::stoll(s));
      if (std::regex_match(s, float_re)) return std::stod(s);
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~") return nullptr;
      return s;
    }
  }
  return nullptr;
}

std::string as_string(const json& v, const std::string& key, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return v.dump();
  usage_error("{}: '{}' must be a string, got {}", where, key, v.dump());
}

std::vector<std::string> as_string_list(const json& v, const std::string& key,
                                        const std::string& where) {
  std::vector<std::string> out;
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) usage_error("{}: '{}' must be a string or a list of strings", where, key);
  for (const auto& x : v) out.push_back(as_string(x, key, where));
  return out;
}

MetricConfig parse_metric(const json& m, const std::string& where) {
  if (!m.is_object() || !m.contains("metric"))
    usage_error("{}: each metric_list entry needs 'metric'", where);
  MetricConfig mc;
  mc.metric = as_string(m["metric"], "metric", where);
  static const std::set<std::string> known = {
      "acc",        "acc_norm",        "acc_bytes",       "exact_match",
      "perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte",
      "judge_score"};
  if (!known.count(mc.metric))
    usage_error(
        "{}: unsupported metric '{}' (supported: acc, acc_norm, acc_bytes, exact_match, "
        "perplexity, "
        "word_perplexity, byte_perplexity, bits_per_byte, judge_score)",
        where, mc.metric);
  for (auto it = m.begin(); it != m.end(); ++it) {
    const std::string& k = it.key();
    if (k == "ignore_case")
      mc.ignore_case = it->get<bool>();
    else if (k == "ignore_punctuation")
      mc.ignore_punctuation = it->get<bool>();
    else if (k == "ignore_numbers")
      mc.ignore_numbers = it->get<bool>();
    else if (k == "regexes_to_ignore")
      mc.regexes_to_ignore = as_string_list(*it, k, where);
    else if (k != "metric" && k != "aggregation" && k != "higher_is_better")
      usage_error("{}: unsupported metric option '{}' for {}", where, k, mc.metric);
  }
  return mc;
}

FilterPipeline parse_filter(const json& f, const std::string& where) {
  FilterPipeline p;
  if (!f.is_object() || !f.contains("name") || !f.contains("filter"))
    usage_error("{}: each filter_list entry needs 'name' and 'filter'", where);
  p.name = as_string(f["name"], "name", where);
  for (const auto& s : f["filter"]) {
    FilterStep step;
    step.function = as_string(s.value("function", json("")), "function", where);
    static const std::set<std::string> known = {"regex",     "take_first",        "lowercase",
                                                "uppercase", "remove_whitespace", "strip"};
    if (!known.count(step.function))
      usage_error(
          "{}: filter {}: unsupported function '{}' (supported: regex, take_first, lowercase, "
          "uppercase, remove_whitespace, strip)",
          where, p.name, step.function);
    if (s.contains("regex_pattern"))
      step.regex_pattern = as_string(s["regex_pattern"], "regex_pattern", where);
    if (s.contains("group_select")) step.group_select = s["group_select"].get<int64_t>();
    if (s.contains("fallback")) step.fallback = as_string(s["fallback"], "fallback", where);
    p.steps.push_back(step);
  }
  return p;
}

std::string resolve_path(const std::string& p, const std::string& base_dir) {
  if (p.empty() || p[0] == '/' || base_dir.empty()) return p;
  return join_path(base_dir, p);
}

}  // namespace

OutputType parse_output_type(const std::string& s, const std::string& where) {
  if (s == "multiple_choice") return OutputType::kMultipleChoice;
  if (s == "loglikelihood") return OutputType::kLoglikelihood;
  if (s == "loglikelihood_rolling") return OutputType::kLoglikelihoodRolling;
  if (s == "generate_until") return OutputType::kGenerateUntil;
  if (s == "judge") return OutputType::kJudge;
  usage_error(
      "{}: output_type '{}' is not one of multiple_choice, loglikelihood, loglikelihood_rolling, "
      "generate_until, judge",
      where, s);
}

std::string output_type_name(OutputType t) {
  switch (t) {
    case OutputType::kMultipleChoice:
      return "multiple_choice";
    case OutputType::kLoglikelihood:
      return "loglikelihood";
    case OutputType::kLoglikelihoodRolling:
      return "loglikelihood_rolling";
    case OutputType::kGenerateUntil:
      return "generate_until";
    case OutputType::kJudge:
      return "judge";
  }
  return "?";
}

TaskConfig parse_task_yaml(const std::string& yaml_text, const std::string& source,
                           const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    usage_error("{}: invalid YAML: {}", source, e.what());
  }
  if (!root.IsMap()) usage_error("{}: a task YAML must be a mapping", source);
  const json j = yaml_to_json(root, source);
  TaskConfig c;
  c.source = source;
  c.raw = j;
  // Keys the harness uses that change nothing here.
  static const std::set<std::string> ignored = {"tag",
                                                "group",
                                                "dataset_name",
                                                "should_decontaminate",
                                                "doc_to_decontamination_query",
                                                "fewshot_config",
                                                "metadata",
                                                "repeats",
                                                "unsafe_code",
                                                "dataset_path"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const json& v = *it;
    if (k == "task")
      c.task = as_string(v, k, source);
    else if (k == "dataset_kwargs") {
      if (!v.is_object() || !v.contains("data_files"))
        usage_error("{}: dataset_kwargs needs data_files (split: path.jsonl)", source);
      const json& df = v["data_files"];
      if (df.is_object()) {
        for (auto d = df.begin(); d != df.end(); ++d)
          c.data_files[d.key()] = resolve_path(as_string(*d, "data_files", source), base_dir);
      } else {
        c.data_files["train"] = resolve_path(as_string(df, "data_files", source), base_dir);
      }
    } else if (k == "test_split")
      c.test_split = v.is_null() ? "" : as_string(v, k, source);
    else if (k == "validation_split")
      c.validation_split = v.is_null() ? "" : as_string(v, k, source);
    else if (k == "training_split")
      c.training_split = v.is_null() ? "" : as_string(v, k, source);
    else if (k == "fewshot_split")
      c.fewshot_split = v.is_null() ? "" : as_string(v, k, source);
    else if (k == "output_type")
      c.output_type = parse_output_type(as_string(v, k, source), source);
    else if (k == "doc_to_text")
      c.doc_to_text = as_string(v, k, source);
    else if (k == "doc_to_target")
      c.doc_to_target = as_string(v, k, source);
    else if (k == "doc_to_choice") {
      c.has_doc_to_choice = true;
      if (v.is_array())
        c.choice_list = as_string_list(v, k, source);
      else if (v.is_object())
        for (const auto& x : v) c.choice_list.push_back(as_string(x, k, source));
      else
        c.doc_to_choice = as_string(v, k, source);
    } else if (k == "description")
      c.description = v.is_null() ? "" : as_string(v, k, source);
    else if (k == "target_delimiter")
      c.target_delimiter = as_string(v, k, source);
    else if (k == "fewshot_delimiter")
      c.fewshot_delimiter = as_string(v, k, source);
    else if (k == "num_fewshot")
      c.num_fewshot = v.get<int64_t>();
    else if (k == "metric_list")
      for (const auto& m : v) c.metrics.push_back(parse_metric(m, source));
    else if (k == "generation_kwargs") {
      for (auto g = v.begin(); g != v.end(); ++g) {
        if (g.key() == "until") {
          c.until = as_string_list(*g, "until", source);
          c.has_until = true;
        } else if (g.key() == "max_gen_toks" || g.key() == "max_new_tokens") {
          c.max_gen_toks = g->get<int64_t>();
        } else if (g.key() == "do_sample") {
          if (g->get<bool>())
            usage_error("{}: do_sample: true is not supported (evaluation decodes greedily)",
                        source);
        } else if (g.key() == "temperature") {
          if (g->get<double>() != 0)
            usage_error("{}: temperature must be 0 (evaluation decodes greedily)", source);
        } else {
          usage_error("{}: unsupported generation_kwargs key '{}'", source, g.key());
        }
      }
    } else if (k == "filter_list")
      for (const auto& f : v) c.filters.push_back(parse_filter(f, source));
    else if (k == "judge") {
      for (auto g = v.begin(); g != v.end(); ++g) {
        if (g.key() == "rubric")
          c.judge.rubric = as_string(*g, "judge.rubric", source);
        else if (g.key() == "score_regex")
          c.judge.score_regex = as_string(*g, "judge.score_regex", source);
        else if (g.key() == "min_score")
          c.judge.min_score = g->get<double>();
        else if (g.key() == "max_score")
          c.judge.max_score = g->get<double>();
        else if (g.key() == "system_prompt")
          c.judge.system_prompt = as_string(*g, "judge.system_prompt", source);
        else
          usage_error("{}: unsupported judge key '{}'", source, g.key());
      }
    } else if (k == "process_docs" || k == "process_results") {
      usage_error("{}: '{}' runs Python code, which Reef cannot; preprocess the JSONL instead",
                  source, k);
    } else if (!ignored.count(k)) {
      usage_error("{}: unknown task key '{}'", source, k);
    }
  }
  if (j.contains("metadata") && j["metadata"].is_object() && j["metadata"].contains("version") &&
      j["metadata"]["version"].is_number())
    c.version = j["metadata"]["version"].get<double>();
  if (c.task.empty()) usage_error("{}: the task needs a name ('task:')", source);
  if (j.contains("dataset_path")) {
    std::string dp = as_string(j["dataset_path"], "dataset_path", source);
    if (dp != "json" && dp != "jsonl")
      usage_error(
          "{}: dataset_path '{}': only local files are supported (dataset_path: json with "
          "dataset_kwargs.data_files)",
          source, dp);
  }
  if (c.data_files.empty())
    usage_error("{}: no data files (dataset_kwargs: {{data_files: {{test: file.jsonl}}}})", source);
  if (c.output_type == OutputType::kMultipleChoice && !c.has_doc_to_choice)
    usage_error("{}: output_type multiple_choice needs doc_to_choice", source);
  if (c.output_type == OutputType::kJudge && c.judge.rubric.empty())
    usage_error("{}: output_type judge needs judge.rubric", source);
  apply_task_defaults(c);
  return c;
}

void apply_task_defaults(TaskConfig& c) {
  if (c.metrics.empty()) {
    std::vector<std::string> names;
    switch (c.output_type) {
      case OutputType::kMultipleChoice:
        names = {"acc", "acc_norm"};
        break;
      case OutputType::kLoglikelihood:
        names = {"perplexity", "acc"};
        break;
      case OutputType::kLoglikelihoodRolling:
        names = {"word_perplexity", "byte_perplexity", "bits_per_byte"};
        break;
      case OutputType::kGenerateUntil:
        names = {"exact_match"};
        break;
      case OutputType::kJudge:
        names = {"judge_score"};
        break;
    }
    for (auto& n : names) c.metrics.push_back(MetricConfig{n});
  }
  if (!c.has_until) c.until = {c.fewshot_delimiter};
  if (c.filters.empty()) c.filters.push_back(FilterPipeline{"none", {FilterStep{"take_first"}}});
}

TaskConfig load_task_yaml(const std::string& path) {
  if (!path_exists(path)) usage_error("--tasks: no such task file: {}", path);
  std::string dir =
      path.find('/') == std::string::npos ? "." : path.substr(0, path.find_last_of('/'));
  return parse_task_yaml(read_file(path), path, dir);
}

std::vector<json> read_jsonl_docs(const std::string& path) {
  if (!path_exists(path)) usage_error("task data file not found: {}", path);
  std::istringstream in(read_file(path));
  std::vector<json> docs;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      docs.push_back(json::parse(line));
    } catch (const json::parse_error& e) {
      usage_error("{}:{}: not a JSON object: {}", path, n, e.what());
    }
    if (!docs.back().is_object()) usage_error("{}:{}: each line must be a JSON object", path, n);
  }
  return docs;
}

Task::Task(TaskConfig cfg, std::map<std::string, std::vector<json>> docs)
    : cfg_(std::move(cfg)), docs_(std::move(docs)) {
  rnd_ = std::make_unique<PythonRandom>(1234);
  if (cfg_.test_split.empty() && cfg_.validation_split.empty())
    usage_error("{}: set test_split or validation_split", cfg_.source);
  for (const std::string* s :
       {&cfg_.test_split, &cfg_.validation_split, &cfg_.training_split, &cfg_.fewshot_split})
    if (!s->empty() && !docs_.count(*s))
      usage_error("{}: split '{}' has no file in dataset_kwargs.data_files", cfg_.source, *s);
}

const std::vector<json>& Task::eval_docs() const { return docs_.at(eval_split()); }
const std::string& Task::eval_split() const {
  return cfg_.test_split.empty() ? cfg_.validation_split : cfg_.test_split;
}

const std::vector<json>& Task::fewshot_docs() const {
  // The harness: fewshot_split, else training, else validation, else test documents.
  for (const std::string* s :
       {&cfg_.fewshot_split, &cfg_.training_split, &cfg_.validation_split, &cfg_.test_split})
    if (!s->empty()) return docs_.at(*s);
  return eval_docs();
}

json Task::field_or_template(const std::string& spec, const json& doc, const char* what) const {
  if (doc.contains(spec)) return doc[spec];
  return template_value(spec, doc, fmt::format("task {}: {}", cfg_.task, what));
}

std::string Task::doc_to_text(const json& doc) const {
  json v = field_or_template(cfg_.doc_to_text, doc, "doc_to_text");
  return v.is_string() ? v.get<std::string>() : python_str(v);
}

json Task::doc_to_target(const json& doc) const {
  if (doc.contains(cfg_.doc_to_target)) return doc[cfg_.doc_to_target];
  const std::string where = fmt::format("task {}: doc_to_target", cfg_.task);
  json v = template_value(cfg_.doc_to_target, doc, where);
  if (!v.is_string()) return v;
  // The harness turns a rendered all-digit string into an index when the task has choices.
  std::string s = v.get<std::string>();
  if (cfg_.has_doc_to_choice && !s.empty() &&
      s.find_first_not_of("0123456789") == std::string::npos)
    return static_cast<int64_t>(std::stoll(s));
  return s;
}

std::vector<std::string> Task::doc_to_choice(const json& doc) const {
  if (!cfg_.choice_list.empty() || cfg_.doc_to_choice.empty()) return cfg_.choice_list;
  json v = field_or_template(cfg_.doc_to_choice, doc, "doc_to_choice");
  if (!v.is_array())
    usage_error("task {}: doc_to_choice '{}' gave {}, not a list", cfg_.task, cfg_.doc_to_choice,
                v.dump());
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(x.is_string() ? x.get<std::string>() : python_str(x));
  return out;
}

int64_t Task::gold_index(const json& doc) const {
  json g = doc_to_target(doc);
  auto choices = doc_to_choice(doc);
  if (g.is_array()) g = g.empty() ? json(-100) : g[0];
  if (g.is_number_integer()) {
    int64_t i = g.get<int64_t>();
    return i < static_cast<int64_t>(choices.size()) ? i : -100;
  }
  if (g.is_string()) {
    for (size_t i = 0; i < choices.size(); ++i)
      if (choices[i] == g.get<std::string>()) return static_cast<int64_t>(i);
  }
  return -100;
}

std::string Task::target_text(const json& doc) const {
  json a = doc_to_target(doc);
  if (a.is_number_integer() && cfg_.has_doc_to_choice) {
    auto c = doc_to_choice(doc);
    int64_t i = a.get<int64_t>();
    if (i < 0 || i >= static_cast<int64_t>(c.size()))
      usage_error("task {}: target index {} is out of range for {} choices", cfg_.task, i,
                  c.size());
    return c[static_cast<size_t>(i)];
  }
  if (a.is_array()) a = a.empty() ? json("") : a[0];
  return a.is_string() ? a.get<std::string>() : python_str(a);
}

void Task::set_fewshot_seed(uint64_t seed) { rnd_ = std::make_unique<PythonRandom>(seed); }

void Task::set_chat_template(std::shared_ptr<const ChatTemplate> chat_template) {
  chat_template_ = std::move(chat_template);
}

std::vector<std::string> Task::until() const {
  std::vector<std::string> out = cfg_.until;
  if (chat_template_) {
    const std::string eot = chat_template_->end_of_turn();
    if (!eot.empty() && std::find(out.begin(), out.end(), eot) == out.end()) out.push_back(eot);
  }
  return out;
}

std::string Task::fewshot_context(const json& doc, int64_t num_fewshot) {
  std::string description;
  if (!cfg_.description.empty())
    description =
        render_template(cfg_.description, doc, fmt::format("task {}: description", cfg_.task));
  std::string out = chat_template_ ? "" : description;
  if (num_fewshot > 0) {
    const auto& pool = fewshot_docs();
    // The eval doc is left out only when the few-shot split is named and is the test split.
    const bool exclude = !cfg_.fewshot_split.empty() && cfg_.fewshot_split == cfg_.test_split;
    const int64_t draw = num_fewshot + (exclude ? 1 : 0);
    if (draw > static_cast<int64_t>(pool.size()))
      usage_error("task {}: {} few-shot examples requested but the few-shot split has {} documents",
                  cfg_.task, num_fewshot, pool.size());
    std::vector<const json*> shots;
    for (int64_t i : rnd_->sample(static_cast<int64_t>(pool.size()), draw)) {
      if (exclude && pool[i] == doc) continue;
      if (static_cast<int64_t>(shots.size()) < num_fewshot) shots.push_back(&pool[i]);
    }
    if (exclude && static_cast<int64_t>(shots.size()) < num_fewshot) {
      // Copies of the eval doc were drawn: the harness redraws from the pool without them.
      std::vector<const json*> rest;
      for (const auto& d : pool)
        if (d != doc) rest.push_back(&d);
      shots.clear();
      for (int64_t i : rnd_->sample(static_cast<int64_t>(rest.size()), num_fewshot))
        shots.push_back(rest[i]);
    }
    for (const json* s : shots) {
      const json a = doc_to_target(*s);
      if (a.is_null() || (a.is_string() && a.get<std::string>().empty())) {
        out += doc_to_text(*s);  // the harness adds no answer and no delimiters for an empty target
        continue;
      }
      out += doc_to_text(*s) + cfg_.target_delimiter + target_text(*s) + cfg_.fewshot_delimiter;
    }
  }
  out += doc_to_text(doc);
  if (!chat_template_) return out;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!description.empty()) messages.push_back({{"role", "system"}, {"content", description}});
  messages.push_back({{"role", "user"}, {"content", out}});
  ChatOptions options;
  options.add_generation_prompt = true;
  return chat_template_->render(messages, options).text;
}

std::vector<Request> Task::construct_requests(const json& doc, const std::string& context) const {
  switch (cfg_.output_type) {
    case OutputType::kMultipleChoice: {
      std::vector<Request> out;
      // With a chat template the answer starts the assistant's turn: no delimiter before it.
      const std::string delimiter = chat_template_ ? "" : cfg_.target_delimiter;
      for (const auto& c : doc_to_choice(doc)) out.push_back(Request{context, delimiter + c, ""});
      return out;
    }
    case OutputType::kLoglikelihood:
      return {Request{context, target_text(doc), ""}};
    case OutputType::kLoglikelihoodRolling:
      return {Request{"", "", target_text(doc)}};
    case OutputType::kGenerateUntil:
    case OutputType::kJudge:
      return {Request{context, "", ""}};
  }
  return {};
}

Task make_task(const std::string& name_or_path, const std::vector<std::string>& include_paths) {
  if (auto b = make_builtin_task(name_or_path)) return std::move(*b);
  TaskConfig cfg;
  if (ends_with(name_or_path, ".yaml") || ends_with(name_or_path, ".yml") ||
      path_exists(name_or_path)) {
    cfg = load_task_yaml(name_or_path);
  } else {
    bool found = false;
    for (const auto& dir : include_paths) {
      if (!is_directory(dir)) usage_error("--include-path: no such folder: {}", dir);
      for (const auto& f : list_dir(dir)) {
        if (!ends_with(f, ".yaml") && !ends_with(f, ".yml")) continue;
        TaskConfig c = load_task_yaml(join_path(dir, f));
        if (c.task == name_or_path) {
          cfg = c;
          found = true;
          break;
        }
      }
      if (found) break;
    }
    if (!found) {
      std::string builtins;
      for (const auto& n : builtin_task_names()) builtins += (builtins.empty() ? "" : ", ") + n;
      usage_error(
          "--tasks: '{}' is not a built-in task ({}), a task YAML file, or a task in "
          "--include-path",
          name_or_path, builtins);
    }
  }
  std::map<std::string, std::vector<json>> docs;
  for (const auto& [split, path] : cfg.data_files) docs[split] = read_jsonl_docs(path);
  return Task(std::move(cfg), std::move(docs));
}

}  // namespace reef::eval
