// `reef tokenizer train`: flags to tokenizer/train_tokenizer.h (documents read through the data
// layer), which trains a byte-level BPE tokenizer and writes DIR/tokenizer.json and friends;
// `reef tokenizer encode`: stdin text to ids with any tokenizer Reef loads; `reef tokenizer chat`
// is registered from chat_cmd.cpp.
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "reef/base/error.h"
#include "reef/base/log.h"
#include "reef/cli/subcommands.h"
#include "reef/data/documents.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/tokenizer/train_tokenizer.h"

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

int run_train(const TrainArgs& a) {
  TrainTokenizerOptions o;
  o.inputs = a.inputs;
  o.output = a.output;
  o.format = a.format;
  o.text_key = a.text_key;
  o.progress = a.progress;
  o.bpe.vocab_size = a.vocab_size;
  o.bpe.min_frequency = a.min_frequency;
  o.bpe.special_tokens = split_specials(a.specials);
  o.bpe.pattern = a.pattern;
  o.bpe.max_token_length = a.max_token_length;
  o.bpe.threads = a.threads;
  o.read_documents = read_documents;
  const TrainTokenizerResult r = train_tokenizer(o);
  if (r.vocab_size < a.vocab_size)
    log_warn(
        "tokenizer train: the corpus ran out of pairs (min frequency {}): vocab {} < --vocab-size "
        "{}",
        a.min_frequency, r.vocab_size, a.vocab_size);
  log_info(
      "trained tokenizer: {} documents, {:.1f} MB, {} unique words -> vocab {} ({} specials, 256 "
      "bytes, "
      "{} merges) in {:.2f}s (counting {:.2f}s, merges {:.2f}s, writing {:.2f}s) -> {}",
      r.documents, r.bytes / 1e6, r.unique_words, r.vocab_size, r.special_tokens, r.merges,
      r.total_s, r.count_s, r.merge_s, r.write_s, r.tokenizer_json);
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
