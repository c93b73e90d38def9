// `reef tokenizer train`: reads documents (text or JSONL) through the data layer, trains a
// byte-level BPE tokenizer (tokenizer/bpe_trainer.h) and writes DIR/tokenizer.json and friends;
// `reef tokenizer encode`: stdin text to ids with any tokenizer Reef loads; `reef tokenizer chat`
// is registered from chat_cmd.cpp.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/progress.h"
#include "reef/cli/subcommands.h"
#include "reef/data/documents.h"
#include "reef/tokenizer/bpe_trainer.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef::cli {

void add_tokenizer_chat(CLI::App* tokenizer, Runs& runs);  // chat_cmd.cpp

namespace {

struct TrainArgs {
  std::vector<std::string> inputs;
  std::string output, format = "auto", text_key = "text", specials = "<|endoftext|>",
                      pattern = "llama3", progress = "auto";
  int64_t vocab_size = 0, min_frequency = 2, max_token_length = 0;
  int threads = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<std::string> split_specials(const std::string& csv) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= csv.size()) {
    size_t e = csv.find(',', b);
    if (e == std::string::npos) e = csv.size();
    if (e > b) out.push_back(csv.substr(b, e - b));
    b = e + 1;
  }
  return out;
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

int run_train(const TrainArgs& a) {
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
  BpeTrainerOptions opts;
  opts.vocab_size = a.vocab_size;
  opts.min_frequency = a.min_frequency;
  opts.special_tokens = split_specials(a.specials);
  opts.pattern = a.pattern;
  opts.max_token_length = a.max_token_length;
  opts.threads = a.threads > 0
                     ? a.threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  BpeTrainer trainer(opts);  // validates vocab size, pattern and specials
  check_output(a.output);
  log_info(
      "tokenizer train: {} input file(s), {:.1f} MB, vocab {}, pattern {}, {} special(s), {} "
      "thread(s)",
      a.inputs.size(), total_bytes / 1e6, a.vocab_size, a.pattern, opts.special_tokens.size(),
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
    std::vector<std::string> docs = read_documents(in, a.format, a.text_key);
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
  const int64_t n_words = trainer.unique_words();
  tick(
      total_mb,
      [&] {
        return fmt::format("{} docs {} words", format_count(static_cast<double>(trainer.texts())),
                           format_count(static_cast<double>(n_words)));
      },
      true);
  if (bar) bar->finish();
  const double count_s = seconds_since(t0);
  if (trainer.texts() == 0)
    usage_error("--input: no documents found in {} file(s)", a.inputs.size());

  // Merges.
  const auto t1 = std::chrono::steady_clock::now();
  const int64_t n_merges = std::max<int64_t>(1, a.vocab_size - trainer.initial_vocab_size());
  if (show) bar = std::make_unique<ProgressBar>("merges", n_merges, a.progress, 1);
  last = t1;
  BpeVocab v = trainer.train([&](int64_t done, int64_t total) {
    tick(
        std::min(done, total),
        [&] { return fmt::format("{:.0f} merges/s", done / std::max(1e-9, seconds_since(t1))); },
        done == total);
  });
  if (bar) bar->finish();
  const double merge_s = seconds_since(t1);

  const auto t2 = std::chrono::steady_clock::now();
  save_bpe_tokenizer(v, a.output);
  // Reef itself must load what it wrote.
  HfTokenizer check(join_path(a.output, "tokenizer.json"),
                    join_path(a.output, "tokenizer_config.json"));
  if (check.vocab_size() != static_cast<int64_t>(v.tokens.size()))
    fail("{}: reloaded vocabulary has {} tokens, expected {}", a.output, check.vocab_size(),
         v.tokens.size());
  if (static_cast<int64_t>(v.tokens.size()) < a.vocab_size)
    log_warn(
        "tokenizer train: the corpus ran out of pairs (min frequency {}): vocab {} < --vocab-size "
        "{}",
        a.min_frequency, v.tokens.size(), a.vocab_size);
  log_info(
      "trained tokenizer: {} documents, {:.1f} MB, {} unique words -> vocab {} ({} specials, 256 "
      "bytes, "
      "{} merges) in {:.2f}s (counting {:.2f}s, merges {:.2f}s, writing {:.2f}s) -> {}",
      trainer.texts(), trainer.bytes() / 1e6, n_words, v.tokens.size(), v.special_tokens.size(),
      v.merges.size(), seconds_since(t0), count_s, merge_s, seconds_since(t2),
      join_path(a.output, "tokenizer.json"));
  return 0;
}

int run_encode(const std::string& tokenizer, bool special) {
  auto tok = load_tokenizer(tokenizer);
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::vector<int32_t> ids;
  if (auto* hf = dynamic_cast<HfTokenizer*>(tok.get()); hf && special) {
    ids = hf->encode(text, EncodeOptions{false, true});
  } else {
    ids = tok->encode(text);
  }
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  std::cout << out << "\n" << std::flush;
  return 0;
}

}  // namespace

void add_tokenizer(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand("tokenizer", "train and try tokenizers");
  cmd->require_subcommand(1);
  {
    auto* t = cmd->add_subcommand(
        "train", "train a byte-level BPE tokenizer (HF tokenizer.json) on text / JSONL files");
    auto a = std::make_shared<TrainArgs>();
    t->add_option("--input,-i", a->inputs,
                  "input files: .jsonl/.json (one object per line) or text (blank-line separated)")
        ->required()
        ->expected(1, -1);
    t->add_option("--vocab-size,-v", a->vocab_size,
                  "vocabulary size: specials + 256 byte symbols + merges")
        ->required();
    t->add_option("--output,-o", a->output,
                  "output folder (tokenizer.json, tokenizer_config.json, special_tokens_map.json)")
        ->required();
    t->add_option("--format", a->format, "input format: auto (by extension), text or jsonl")
        ->capture_default_str();
    t->add_option("--text-key", a->text_key, "JSONL field holding the text")->capture_default_str();
    t->add_option("--min-frequency", a->min_frequency,
                  "stop merging when the best pair occurs fewer times")
        ->capture_default_str();
    t->add_option("--special-tokens", a->specials,
                  "comma-separated special tokens, ids 0.. (\"\" for none)")
        ->capture_default_str();
    t->add_option("--pattern", a->pattern,
                  "pre-tokenization: gpt2, llama3 (= cl100k), qwen2, or a regex")
        ->capture_default_str();
    t->add_option("--max-token-length", a->max_token_length,
                  "merged tokens stay shorter than N bytes, as HF max_token_length (0: unlimited)")
        ->capture_default_str();
    t->add_option("--threads,-j", a->threads, "counting/merging threads (0: all cores)")
        ->capture_default_str();
    t->add_option("--progress", a->progress,
                  "progress display: auto, on, off (plain lines) or none")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "on", "off", "none"}));
    t->callback([&runs, a] { runs.push_back([a] { return run_train(*a); }); });
  }
  {
    auto* e = cmd->add_subcommand("encode", "encode stdin with a tokenizer and print the ids");
    auto tok = std::make_shared<std::string>();
    auto special = std::make_shared<bool>(false);
    e->add_option("--tokenizer,-t", *tok, "a tokenizer file or model folder")->required();
    e->add_flag("--parse-special", *special,
                "turn special-token text into special ids (as HF does)");
    e->callback([&runs, tok, special] {
      runs.push_back([tok, special] { return run_encode(*tok, *special); });
    });
  }
  add_tokenizer_chat(cmd, runs);
}

}  // namespace reef::cli
