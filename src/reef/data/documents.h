// Documents read whole for small runs (data.train_files): text or JSONL files tokenized at load
// into one token stream (each document followed by end-of-text), and fixed windows over it
// served as samples. Large runs use indexed datasets (sample_index.h, blend.h) instead.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "reef/data/sample_index.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

// Whether format "auto" reads `path` as JSONL: a .jsonl or .json name, also before .gz/.zst.
bool is_jsonl_path(const std::string& path);

// Reads documents from `path`. format: "auto" (by extension), "text" or "jsonl".
// text: documents are separated by one or more blank lines. jsonl: one object per line whose
// `text_key` field is a string. Bad input throws a usage error naming file:line.
std::vector<std::string> read_documents(const std::string& path, const std::string& format,
                                        const std::string& text_key);

// Deterministic split by content hash: a document goes to validation when its hash falls in
// the first `valid_fraction` of the hash range, so the split does not depend on file order.
void split_documents(std::vector<std::string> docs, double valid_fraction,
                     std::vector<std::string>* train, std::vector<std::string>* valid);

struct TokenStream {
  std::vector<int32_t> tokens;
  int64_t n_documents = 0;
};

// Encodes each document and appends eos after it.
TokenStream tokenize_documents(const std::vector<std::string>& docs, const Tokenizer& tok);

// Windows of seq_len+1 tokens (inputs and shifted targets) at stride seq_len over a token
// stream, as a GptSampleSource: sample i is window order_e[i mod n] of epoch e = i / n, each
// epoch shuffled with its own seed, so sample i never depends on how many are drawn and the
// count of samples consumed is all it takes to resume.
class TokenWindows : public GptSampleSource {
 public:
  // epochs: how many passes num_samples() offers; 0 means as many as asked for.
  TokenWindows(std::shared_ptr<const TokenStream> stream, int64_t seq_len, uint64_t seed,
               bool shuffle = true, int64_t epochs = 0);
  int64_t num_windows() const { return n_windows_; }
  int64_t num_samples() const override;
  int64_t seq_len() const override { return seq_len_; }
  void sample(int64_t i, std::vector<int32_t>* out) const override;
  uint64_t fingerprint() const override;
  // Token offset in the stream where sample i starts.
  int64_t window_start(int64_t i) const;

 private:
  std::shared_ptr<const TokenStream> stream_;
  int64_t n_windows_ = 0, seq_len_ = 0, epochs_ = 0;
  uint64_t seed_ = 0;
  bool shuffle_ = true;
  mutable std::mutex mu_;  // guards the cached order of one epoch
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> order_;
};

}  // namespace reef
