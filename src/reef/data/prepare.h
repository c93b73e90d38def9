// `reef data prepare` and `reef data inspect` as library calls: stream JSONL / plain-text
// documents line by line, tokenize batches on worker threads, and write them in input order to a
// Megatron indexed dataset (so the output is identical for any number of workers); and summarize
// an indexed dataset (counts, document-length histogram, decoded samples). Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reef/data/indexed_dataset.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct PrepareOptions {
  // .jsonl/.json (one object per line) or text (blank-line separated), each plain or gzip/zstd
  // compressed (.jsonl.gz, .jsonl.zst: recognised by content; the suffix before .gz picks JSONL)
  std::vector<std::string> inputs;
  std::string output_prefix;      // writes PREFIX.bin and PREFIX.idx (temp names, then renamed)
  std::string text_key = "text";  // JSONL field holding the document
  bool append_eod = false;        // append tokenizer.eos_id() after every document
  int workers = 1;                // tokenizing threads (>= 1)
  bool skip_bad = false;          // count and skip bad lines instead of failing
  int64_t batch_bytes = 1 << 20;  // input bytes per batch handed to a worker
  int64_t batch_docs = 512;       // documents (or JSONL lines) per batch at most
  std::string progress = "auto";  // ProgressBar mode: auto, on, off (plain lines) or none
};

struct PrepareStats {
  int64_t documents = 0;      // documents written
  int64_t tokens = 0;         // tokens written (eod included)
  int64_t input_bytes = 0;    // bytes of input read
  int64_t output_bytes = 0;   // size of PREFIX.bin
  int64_t skipped = 0;        // bad lines / documents skipped under skip_bad
  int64_t empty = 0;          // documents that encoded to no tokens (kept only with append_eod)
  std::string first_skipped;  // "file:line: reason" of the first skipped one
  double seconds = 0;
  TokenDType dtype = TokenDType::kUInt16;
};

// Prepares an indexed dataset. Bad input (missing file, malformed JSON, a missing or non-string
// text key, invalid UTF-8) throws a usage error naming file:line unless skip_bad, and nothing is
// left under the output names. Empty documents are dropped unless append_eod gives them a token.
PrepareStats prepare_dataset(const PrepareOptions& opts, const Tokenizer& tok);

// One line for the end of a run: documents, tokens, bytes, MB/s, tokens/s and skips.
std::string format_prepare_summary(const PrepareStats& s, const std::string& prefix);

// A human-readable report of an indexed dataset: sequence, document and token counts, dtype,
// document-length statistics and a log2-bucket histogram, and `samples` decoded documents
// (evenly spaced) when `tok` is given.
std::string inspect_dataset(const std::string& prefix, const Tokenizer* tok, int samples);

}  // namespace reef
