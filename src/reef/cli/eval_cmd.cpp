// `reef eval --model DIR | --endpoint URL --tasks a,b [--num-fewshot K] [--limit N]
// [--batch-size B] --output DIR`: lm-evaluation-harness-style evaluation (eval/evaluator.h).
#include <iostream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/threads.h"
#include "reef/checkpoint/model_io.h"
#include "reef/cli/subcommands.h"
#include "reef/eval/endpoint.h"
#include "reef/eval/evaluator.h"
#include "reef/eval/local_model.h"

namespace reef::cli {
namespace {

struct EvalArgs {
  std::string model, endpoint, endpoint_model, tokenizer, api_key, judge_endpoint, judge_model,
      output;
  std::vector<std::string> tasks, include_paths;
  int64_t num_fewshot = -1, batch_size = 8, max_length = 0, threads = 0;
  double limit = -1;
  uint64_t fewshot_seed = 1234;
  std::string device = "cpu", progress = "auto";
  bool apply_chat_template = false;
  std::string chat_template = "chatml";
};

int run_eval(const EvalArgs& a) {
  if (a.model.empty() == a.endpoint.empty())
    usage_error("reef eval: give exactly one of --model DIR and --endpoint URL");
  if (a.tasks.empty()) usage_error("--tasks: no task given");
  if (a.limit == 0) usage_error("--limit must be > 0, got 0");
  if (a.batch_size < 1) usage_error("--batch-size must be >= 1, got {}", a.batch_size);
  // Tasks first: a bad task file is reported before any model loads.
  std::vector<eval::Task> tasks;
  for (const auto& t : a.tasks) tasks.push_back(eval::make_task(t, a.include_paths));
  if (a.apply_chat_template) {
    // The model's (or the endpoint's --tokenizer folder's) template, else --chat-template: the
    // template `reef serve` would render these prompts with.
    const std::string dir = !a.model.empty() ? resolve_model_dir(a.model) : a.tokenizer;
    auto tmpl = std::make_shared<const ChatTemplate>(
        dir.empty() || !is_directory(dir) ? ChatTemplate::named(a.chat_template)
                                          : ChatTemplate::load(dir, a.chat_template));
    for (auto& t : tasks) t.set_chat_template(tmpl);
  }
  std::unique_ptr<eval::LanguageModel> lm;
  if (!a.model.empty()) {
    torch::set_num_threads(thread_count(a.threads));
    const std::string dir = resolve_model_dir(a.model);
    CausalLM model = load_model_folder(dir, torch::Device(a.device));
    require_language_model(model, dir, "reef eval");
    lm = std::make_unique<eval::LocalModel>(std::move(model), load_tokenizer(dir), dir,
                                            eval::LocalModelOptions{a.batch_size, a.max_length});
  } else {
    eval::EndpointOptions o;
    o.url = a.endpoint;
    o.model = a.endpoint_model;
    o.api_key = a.api_key;
    if (a.max_length > 0) o.max_length = a.max_length;
    lm = std::make_unique<eval::EndpointModel>(
        o, a.tokenizer.empty() ? nullptr : load_tokenizer(a.tokenizer));
  }
  eval::EvalOptions opts;
  if (a.num_fewshot >= 0) opts.num_fewshot = a.num_fewshot;
  opts.limit = a.limit;
  opts.fewshot_seed = a.fewshot_seed;
  opts.progress = a.progress;
  std::shared_ptr<eval::EndpointModel> judge;
  if (!a.judge_endpoint.empty()) {
    eval::EndpointOptions j;
    j.url = a.judge_endpoint;
    j.model = a.judge_model;
    j.api_key = a.api_key;
    judge = std::make_shared<eval::EndpointModel>(j, nullptr);
    opts.judge = [judge](const std::string& system, const std::string& user) {
      return judge->chat(system, user);
    };
  }
  opts.run_config = {
      {"tasks", a.tasks},
      {"num_fewshot", a.num_fewshot >= 0 ? nlohmann::json(a.num_fewshot) : nlohmann::json(nullptr)},
      {"limit", a.limit >= 0 ? nlohmann::json(a.limit) : nlohmann::json(nullptr)},
      {"batch_size", a.batch_size},
      {"apply_chat_template", a.apply_chat_template},
      {"max_length", a.max_length > 0 ? nlohmann::json(a.max_length) : nlohmann::json(nullptr)},
      {"endpoint", a.endpoint.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.endpoint)},
      {"judge_endpoint",
       a.judge_endpoint.empty() ? nlohmann::json(nullptr) : nlohmann::json(a.judge_endpoint)}};
  auto results = eval::evaluate(tasks, *lm, opts, a.output);
  std::cout << eval::results_markdown(results);
  log_info("wrote {}/results.json, results.md and samples_<task>.jsonl", a.output);
  return 0;
}

}  // namespace

void add_eval(CLI::App& app, Runs& runs) {
  auto* cmd =
      app.add_subcommand("eval", "evaluate a model on tasks (lm-evaluation-harness semantics)");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("--model,-m", a->model,
                  "model folder (Reef or Hugging Face), or run folder (newest checkpoint)");
  cmd->add_option("--endpoint", a->endpoint,
                  "OpenAI-compatible server to evaluate instead (e.g. http://127.0.0.1:8000/v1)");
  cmd->add_option("--endpoint-model", a->endpoint_model, "\"model\" field sent to --endpoint");
  cmd->add_option("--tokenizer", a->tokenizer,
                  "tokenizer folder/file of the --endpoint model (log-likelihood tasks)");
  cmd->add_option("--api-key", a->api_key, "Bearer token for the endpoints");
  cmd->add_option("--tasks,-t", a->tasks,
                  "comma-separated: built-in names (arithmetic, copy), task YAML files, or task "
                  "names in --include-path")
      ->required()
      ->delimiter(',');
  cmd->add_option("--include-path", a->include_paths,
                  "folder of task YAMLs to find --tasks names in (repeatable)");
  cmd->add_option("--num-fewshot", a->num_fewshot,
                  "few-shot examples per prompt (default: each task's num_fewshot, else 0)");
  cmd->add_option("--limit", a->limit, "documents per task: a count, or a fraction when below 1");
  cmd->add_option("--batch-size", a->batch_size, "sequences per forward pass")
      ->capture_default_str();
  cmd->add_option("--max-length", a->max_length, "context length in tokens (default: the model's)");
  cmd->add_flag("--apply-chat-template", a->apply_chat_template,
                "render each prompt with the model's chat template (as lm-eval's "
                "--apply_chat_template: description as system message, the rest one user turn)");
  cmd->add_option("--chat-template", a->chat_template,
                  "template when the model folder has none: a built-in name or a .jinja file")
      ->capture_default_str();
  cmd->add_option("--fewshot-seed", a->fewshot_seed, "seed of the few-shot sampler")
      ->capture_default_str();
  cmd->add_option("--judge-endpoint", a->judge_endpoint,
                  "OpenAI-compatible chat server for judge tasks");
  cmd->add_option("--judge-model", a->judge_model, "\"model\" field sent to --judge-endpoint");
  cmd->add_option("--output,-o", a->output,
                  "folder for results.json, results.md and samples_<task>.jsonl")
      ->required();
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads; 0 = every core")->capture_default_str();
  cmd->add_option("--progress", a->progress, "progress bar: auto, on, off")->capture_default_str();
  cmd->callback([&runs, a] { runs.push_back([a] { return run_eval(*a); }); });
}

}  // namespace reef::cli
