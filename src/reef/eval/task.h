// Evaluation tasks as lm-evaluation-harness defines them: a task config (the harness's task YAML
// fields, over local JSONL files), its documents, few-shot contexts drawn with the harness's
// seeded sampler, and the requests each document turns into. Built-in synthetic tasks
// (`arithmetic`, `copy`) need no files.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reef/eval/python_random.h"
#include "reef/tokenizer/chat_template.h"

namespace reef::eval {

enum class OutputType {
  kMultipleChoice,
  kLoglikelihood,
  kLoglikelihoodRolling,
  kGenerateUntil,
  kJudge
};
OutputType parse_output_type(const std::string& s, const std::string& where);
std::string output_type_name(OutputType t);

struct MetricConfig {
  std::string metric;  // acc, acc_norm, acc_bytes, exact_match, word_perplexity, ..., judge_score
  bool ignore_case = false, ignore_punctuation = false, ignore_numbers = false;
  std::vector<std::string> regexes_to_ignore;
};

struct FilterStep {
  std::string function;  // "regex", "take_first", "lowercase", "uppercase", "strip"
  std::string regex_pattern = "#### (\\-?[0-9\\.\\,]+)";
  int64_t group_select = 0;
  std::string fallback = "[invalid]";
};

struct FilterPipeline {
  std::string name;  // "none" when the task has no filter_list
  std::vector<FilterStep> steps;
};

// LLM-as-judge settings (output_type: judge, a Reef extension): the generated answer is scored by
// a chat model behind an OpenAI-compatible endpoint.
struct JudgeConfig {
  std::string rubric;  // template over the document plus {{prediction}} and {{target}}
  std::string score_regex = "(?i)score\\s*[:=]\\s*(-?[0-9]+(?:\\.[0-9]+)?)";
  double min_score = 1, max_score = 10;
  std::string system_prompt = "You are a strict, fair grader.";
};

struct TaskConfig {
  std::string task;                               // name
  std::string source;                             // YAML path or "builtin"
  std::map<std::string, std::string> data_files;  // split -> JSONL path
  std::string test_split, validation_split, training_split, fewshot_split;
  OutputType output_type = OutputType::kGenerateUntil;
  // doc_to_* hold a field name or a template; doc_to_choice may also be a literal list.
  std::string doc_to_text, doc_to_target, doc_to_choice;
  std::vector<std::string> choice_list;  // doc_to_choice given as a YAML list
  bool has_doc_to_choice = false;
  std::string description;
  std::string target_delimiter = " ", fewshot_delimiter = "\n\n";
  std::optional<int64_t> num_fewshot;
  std::vector<MetricConfig> metrics;  // defaults by output type when the YAML has none
  std::vector<std::string> until;
  bool has_until = false;
  int64_t max_gen_toks = 256;
  std::vector<FilterPipeline> filters;
  JudgeConfig judge;
  double version = 1.0;
  nlohmann::json raw;  // the YAML as JSON, written to results.json
};

// Loads a task YAML; relative data file paths resolve against the YAML's folder.
TaskConfig load_task_yaml(const std::string& path);
// Parses task YAML text; `source` names it in errors, `base_dir` resolves relative paths.
TaskConfig parse_task_yaml(const std::string& yaml_text, const std::string& source,
                           const std::string& base_dir);
// Fills the defaults the harness applies (metrics per output type, `until` from fewshot_delimiter).
void apply_task_defaults(TaskConfig& cfg);

// Built-in synthetic task names.
const std::vector<std::string>& builtin_task_names();

// A request for the model, with the document it came from.
struct Request {
  std::string context,
      continuation;  // loglikelihood / multiple choice (continuation has the delimiter)
  std::string text;  // loglikelihood_rolling
};

class Task {
 public:
  // docs: split name -> documents.
  Task(TaskConfig cfg, std::map<std::string, std::vector<nlohmann::json>> docs);

  const TaskConfig& config() const { return cfg_; }
  const std::string& name() const { return cfg_.task; }
  // The documents scored: test split, else validation split.
  const std::vector<nlohmann::json>& eval_docs() const;
  const std::string& eval_split() const;

  std::string doc_to_text(const nlohmann::json& doc) const;
  nlohmann::json doc_to_target(const nlohmann::json& doc) const;  // string, int or list
  std::vector<std::string> doc_to_choice(const nlohmann::json& doc) const;
  // The gold choice index for a multiple-choice doc (-100 when out of range, as the harness).
  int64_t gold_index(const nlohmann::json& doc) const;
  // The target text (choices[target] for an index target, first of a list).
  std::string target_text(const nlohmann::json& doc) const;

  // Sets the few-shot seed (the harness's fewshot_random_seed, 1234 by default). Contexts must
  // then be built for the docs in order, as the sampler state carries from one to the next.
  void set_fewshot_seed(uint64_t seed);
  // The prompt: description, few-shot examples, the document's text. With a chat template set,
  // the harness's --apply_chat_template (few-shot examples not as turns): the description is
  // the system message, everything after it one user message, rendered with the generation
  // prompt.
  std::string fewshot_context(const nlohmann::json& doc, int64_t num_fewshot);
  // Applies `chat_template` to every prompt (null: plain text). Multiple-choice continuations
  // then lose the target delimiter and generation also stops at the template's end of turn, as
  // the harness and a chat server do.
  void set_chat_template(std::shared_ptr<const ChatTemplate> chat_template);
  // `until` for generate_until requests (the config's, plus the chat template's end of turn).
  std::vector<std::string> until() const;

  // The requests for one document given its context: one per choice (multiple choice), one
  // otherwise.
  std::vector<Request> construct_requests(const nlohmann::json& doc,
                                          const std::string& context) const;

 private:
  const std::vector<nlohmann::json>& fewshot_docs() const;
  nlohmann::json field_or_template(const std::string& spec, const nlohmann::json& doc,
                                   const char* what) const;

  TaskConfig cfg_;
  std::map<std::string, std::vector<nlohmann::json>> docs_;
  std::unique_ptr<PythonRandom> rnd_;
  std::shared_ptr<const ChatTemplate> chat_template_;
};

// Reads a JSONL file (one object per line, blank lines skipped); errors name file and line.
std::vector<nlohmann::json> read_jsonl_docs(const std::string& path);

// Builds a task: a built-in name, a YAML path, or a `task:` name found in a YAML under one of
// `include_paths`.
Task make_task(const std::string& name_or_path, const std::vector<std::string>& include_paths);

}  // namespace reef::eval
