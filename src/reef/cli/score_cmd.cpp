// `reef score --model RM --input rows.jsonl [--out scores.jsonl]`: a reward model's score per
// row (align/reward_score.h), and the preference accuracy when the rows are pairs.
#include <iostream>
#include <sstream>

#include "reef/align/reward_score.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/threads.h"
#include "reef/checkpoint/model_io.h"
#include "reef/cli/subcommands.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef::cli {
namespace {

struct ScoreArgs {
  std::string model, input, out, device = "cpu", chat_template = "chatml";
  int64_t threads = 0;
  ScoreOptions options;
};

}  // namespace

void add_score(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand(
      "score", "score JSONL rows (pairs, conversations, texts) with a reward model");
  auto a = std::make_shared<ScoreArgs>();
  cmd->add_option("--model,-m", a->model,
                  "reward model folder (reef align rm, or a Hugging Face "
                  "*ForSequenceClassification with num_labels 1), or its run folder")
      ->required();
  cmd->add_option("--input,-i", a->input,
                  "JSONL rows: {prompt?, chosen, rejected} pairs, {messages}, {prompt, "
                  "completion} or {text}")
      ->required();
  cmd->add_option("--out,-o", a->out,
                  "where the scores go (JSONL, one line per row); default stdout");
  cmd->add_option("--batch-size", a->options.batch_size, "sequences per forward pass")
      ->capture_default_str();
  cmd->add_option("--chat-template", a->chat_template,
                  "template for conversations when the model folder has none (built-in name or "
                  ".jinja file)")
      ->capture_default_str();
  cmd->add_flag("--skip-bad-rows", a->options.skip_bad_rows,
                "drop rows that cannot be read (counted) instead of stopping");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads; 0 uses every core")->capture_default_str();
  cmd->callback([&runs, a] {
    runs.push_back([a] {
      if (a->options.batch_size < 1)
        usage_error("--batch-size must be >= 1, got {}", a->options.batch_size);
      torch::set_num_threads(thread_count(a->threads));
      const std::string dir = resolve_model_dir(a->model);
      CausalLM model = load_model_folder(dir, torch::Device(a->device));
      auto tok = load_tokenizer(dir);
      const ChatTemplate tmpl = ChatTemplate::load(dir, a->chat_template);
      std::ostringstream buffer;
      std::ostream& out = a->out.empty() ? std::cout : buffer;
      const ScoreSummary s = score_jsonl(model, *tok, tmpl, a->input, out, a->options);
      if (!a->out.empty()) write_file_atomic(a->out, buffer.str());
      std::string line = fmt::format("score: {} rows", s.rows);
      if (s.skipped > 0) line += fmt::format(" ({} bad rows skipped)", s.skipped);
      if (s.pairs > 0)
        line += fmt::format("; preference accuracy {:.4f} ({} of {} pairs)", s.accuracy(),
                            s.correct, s.pairs);
      log_info("{}", line);
      return 0;
    });
  });
}

}  // namespace reef::cli
