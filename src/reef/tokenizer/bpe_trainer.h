// Training a byte-level BPE tokenizer from raw text, and writing it as a Hugging Face
// tokenizer.json that `tokenizers`/`transformers` and Reef's HfTokenizer load and encode alike.
// The merge loop reproduces HF `tokenizers`' BpeTrainer (pair counts, a max-heap with lazy
// invalidation, ties broken by the smaller pair of ids, only words holding the merged pair
// updated), so the same corpus and settings give the same vocabulary and merges. Texts come from
// the caller (this layer cannot read datasets); counting pre-tokenized words runs on threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace reef {

class Regex;

struct BpeTrainerOptions {
  int64_t vocab_size = 32000;  // specials + 256 byte symbols + merges, at most
  int64_t min_frequency = 0;   // stop when the best pair occurs fewer times (HF's default 0)
  std::vector<std::string> special_tokens = {"<|endoftext|>"};  // ids 0.. in this order
  std::string pattern = "llama3";  // gpt2, llama3 (alias cl100k), qwen2, or a raw regex
  int64_t max_token_length = 0;    // in bytes; 0: unlimited (HF's max_token_length semantics)
  int threads = 0;                 // word counting and large merge steps; 0: all cores
};

// What training produces: tokenizer.json strings (specials as they are, everything else in the
// GPT-2 byte-to-unicode form) by id, and the merges in rank order.
struct BpeVocab {
  std::vector<std::string> tokens;
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::string> special_tokens;
  std::string pattern_name;  // "gpt2", "llama3", "qwen2" or "regex"
  std::string pattern;       // the Split regex (GPT-2's for gpt2)
};

// The pre-tokenization regex for a pattern name (gpt2, llama3, cl100k, qwen2); anything else is
// taken as a raw regex. *name gets the canonical name ("regex" for a raw one).
std::string bpe_pattern_regex(const std::string& name_or_regex, std::string* name = nullptr);

class BpeTrainer {
 public:
  // Throws a usage error for a bad option (a pattern that does not compile, a vocab_size smaller
  // than the specials plus 256 byte symbols, a negative min_frequency).
  explicit BpeTrainer(BpeTrainerOptions opts);
  ~BpeTrainer();
  BpeTrainer(const BpeTrainer&) = delete;
  BpeTrainer& operator=(const BpeTrainer&) = delete;

  // Adds one document. Texts are buffered and pre-tokenized/counted in parallel batches.
  void add_text(std::string_view text);
  void add_texts(const std::vector<std::string>& texts);

  // Learns the merges. `progress(done, total)` is called now and then with merges done so far.
  // Training consumes the counted words: call it once.
  BpeVocab train(const std::function<void(int64_t, int64_t)>& progress = {});

  int64_t texts() const { return n_texts_; }
  int64_t bytes() const { return n_bytes_; }
  // Distinct pre-tokenized words counted so far (pending texts are counted first).
  int64_t unique_words();
  // Ids before any merge: the specials plus the 256 byte symbols (fewer when a special is a byte).
  int64_t initial_vocab_size() const;
  const BpeTrainerOptions& options() const { return opts_; }

 private:
  void flush();
  int thread_count() const;

  BpeTrainerOptions opts_;
  std::string pattern_name_, pattern_;
  std::unique_ptr<Regex> regex_;
  std::string pending_;               // texts not counted yet, back to back
  std::vector<size_t> pending_ends_;  // end offset of each pending text
  std::unordered_map<std::string, int64_t> word_counts_;
  int64_t n_texts_ = 0, n_bytes_ = 0;
  bool trained_ = false;
};

// tokenizer.json / tokenizer_config.json / special_tokens_map.json texts for a trained vocabulary.
// eos is the first special whose text says "end"/"eos"/"</s>", else the first special; bos the one
// saying "begin"/"bos"/"<s>", else eos; pad one saying "pad", else none.
std::string bpe_tokenizer_json(const BpeVocab& v);
std::string bpe_tokenizer_config_json(const BpeVocab& v);
std::string bpe_special_tokens_map_json(const BpeVocab& v);

// Writes the three files into `dir`: a missing `dir` is built under a temporary name beside it
// and renamed into place; an existing one gets each file replaced atomically. Nothing is left
// half-written on error.
void save_bpe_tokenizer(const BpeVocab& v, const std::string& dir);

}  // namespace reef
