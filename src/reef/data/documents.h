// Documents for training until the indexed-dataset pipeline lands: text or JSONL files read
// whole, tokenized at load into one token stream (each document followed by end-of-text),
// and a sampler of fixed windows over it whose position is part of the resumable state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reef/tokenizer/tokenizer.h"

namespace reef {

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

// Windows of seq_len+1 tokens (inputs and shifted targets) at stride seq_len, visited in a
// seeded random order that is reshuffled every epoch. state() is all it takes to resume.
class WindowSampler {
 public:
  struct State {
    int64_t epoch = 0;
    int64_t index = 0;  // next position in this epoch's permutation
  };

  WindowSampler(int64_t n_tokens, int64_t seq_len, uint64_t seed, bool shuffle = true);
  int64_t num_windows() const { return n_windows_; }
  // Start offset (in tokens) of the next window; advances the position.
  int64_t next();
  State state() const { return state_; }
  void set_state(const State& s);

 private:
  void build_order();
  int64_t n_windows_ = 0;
  int64_t seq_len_ = 0;
  uint64_t seed_ = 0;
  bool shuffle_ = true;
  State state_;
  std::vector<int64_t> order_;
};

}  // namespace reef
