// Implementation of tokenizer/train_tokenizer.h: counting (progress in MB of input), merging
// (progress in merges), writing and the reload check, timed separately for the report.
#include "reef/tokenizer/train_tokenizer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/progress.h"
#include "reef/base/threads.h"
#include "reef/tokenizer/hf_tokenizer.h"

namespace reef {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The output folder must be creatable: not an existing file, and its nearest existing ancestor a
// writable directory. Checked before any work so that a typo fails in a second, not after training.
void check_output(const std::string& dir) {
  namespace fs = std::filesystem;
  if (path_exists(dir) && !is_directory(dir))
    usage_error("--output {}: exists and is not a directory", dir);
  fs::path p = fs::absolute(fs::path(dir));
  while (!p.empty() && !path_exists(p.string())) p = p.parent_path();
  if (p.empty() || !is_directory(p.string()))
    usage_error("--output {}: {} is not a directory", dir, p.string());
  if (::access(p.string().c_str(), W_OK | X_OK) != 0)
    usage_error("--output {}: cannot write into {}", dir, p.string());
}

}  // namespace

TrainTokenizerResult train_tokenizer(const TrainTokenizerOptions& a) {
  const auto t0 = std::chrono::steady_clock::now();
  int64_t total_bytes = 0;
  for (const auto& in : a.inputs) {
    if (!path_exists(in)) usage_error("--input {}: file not found", in);
    if (is_directory(in))
      usage_error("--input {}: is a directory (expected a .txt or .jsonl file)", in);
    total_bytes += static_cast<int64_t>(std::filesystem::file_size(in));
  }
  if (a.format != "auto" && a.format != "text" && a.format != "jsonl")
    usage_error("--format {}: expected auto, text or jsonl", a.format);
  BpeTrainerOptions opts = a.bpe;
  opts.threads = thread_count(opts.threads);
  BpeTrainer trainer(opts);  // validates vocab size, pattern and specials
  check_output(a.output);
  log_info(
      "tokenizer train: {} input file(s), {:.1f} MB, vocab {}, pattern {}, {} special(s), {} "
      "thread(s)",
      a.inputs.size(), total_bytes / 1e6, opts.vocab_size, opts.pattern, opts.special_tokens.size(),
      opts.threads);

  // Reading and counting words.
  const bool show = a.progress != "none";
  const int64_t total_mb = std::max<int64_t>(1, (total_bytes + 999999) / 1000000);
  std::unique_ptr<ProgressBar> bar;
  if (show) bar = std::make_unique<ProgressBar>("count MB", total_mb, a.progress, 1);
  auto last = t0;
  // Redraws at most every 0.2 s on a terminal, every 5 s as log lines; fields() only when due.
  auto tick = [&](int64_t done, auto fields, bool force) {
    if (!bar) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && std::chrono::duration<double>(now - last).count() < (bar->is_bar() ? 0.2 : 5.0))
      return;
    last = now;
    bar->update(done, fields());
  };
  int64_t file_bytes_done = 0;
  for (const auto& in : a.inputs) {
    std::vector<std::string> docs = a.read_documents(in, a.format, a.text_key);
    const auto fsize = static_cast<int64_t>(std::filesystem::file_size(in));
    int64_t doc_bytes = 0, doc_done = 0;
    for (const auto& d : docs) doc_bytes += static_cast<int64_t>(d.size());
    for (auto& d : docs) {
      trainer.add_text(d);
      doc_done += static_cast<int64_t>(d.size());
      std::string().swap(d);
      int64_t done = file_bytes_done + (doc_bytes > 0 ? fsize * doc_done / doc_bytes : fsize);
      tick(
          std::min(total_mb, done / 1000000),
          [&] {
            return fmt::format("{} docs {:.1f} MB/s",
                               format_count(static_cast<double>(trainer.texts())),
                               done / 1e6 / std::max(1e-9, seconds_since(t0)));
          },
          false);
    }
    file_bytes_done += fsize;
  }
  TrainTokenizerResult r;
  r.unique_words = trainer.unique_words();
  tick(
      total_mb,
      [&] {
        return fmt::format("{} docs {} words", format_count(static_cast<double>(trainer.texts())),
                           format_count(static_cast<double>(r.unique_words)));
      },
      true);
  if (bar) bar->finish();
  r.count_s = seconds_since(t0);
  if (trainer.texts() == 0)
    usage_error("--input: no documents found in {} file(s)", a.inputs.size());

  // Merges.
  const auto t1 = std::chrono::steady_clock::now();
  const int64_t n_merges = std::max<int64_t>(1, opts.vocab_size - trainer.initial_vocab_size());
  if (show) bar = std::make_unique<ProgressBar>("merges", n_merges, a.progress, 1);
  last = t1;
  BpeVocab v = trainer.train([&](int64_t done, int64_t total) {
    tick(
        std::min(done, total),
        [&] { return fmt::format("{:.0f} merges/s", done / std::max(1e-9, seconds_since(t1))); },
        done == total);
  });
  if (bar) bar->finish();
  r.merge_s = seconds_since(t1);

  const auto t2 = std::chrono::steady_clock::now();
  save_bpe_tokenizer(v, a.output);
  r.tokenizer_json = join_path(a.output, "tokenizer.json");
  // Reef itself must load what it wrote.
  HfTokenizer check(r.tokenizer_json, join_path(a.output, "tokenizer_config.json"));
  if (check.vocab_size() != static_cast<int64_t>(v.tokens.size()))
    fail("{}: reloaded vocabulary has {} tokens, expected {}", a.output, check.vocab_size(),
         v.tokens.size());
  r.write_s = seconds_since(t2);
  r.total_s = seconds_since(t0);
  r.documents = trainer.texts();
  r.bytes = trainer.bytes();
  r.vocab_size = static_cast<int64_t>(v.tokens.size());
  r.special_tokens = static_cast<int64_t>(v.special_tokens.size());
  r.merges = static_cast<int64_t>(v.merges.size());
  return r;
}

}  // namespace reef
