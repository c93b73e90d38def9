// The embedded default corpus: Debian's `fortunes` package (quotes separated by lines of "%"),
// turned into JSONL documents with a held-out validation split.
#pragma once

#include <cstdint>
#include <string>

namespace reef {

struct FortunesCorpus {
  int64_t n_train = 0, n_valid = 0, n_duplicates = 0;
  int64_t train_bytes = 0, valid_bytes = 0;
  std::string train_path, valid_path;
};

// Reads every fortune file in `src_dir` (the files without .dat/.u8 suffix), one document per
// quote, drops exact duplicates, splits by content hash and writes train.jsonl and valid.jsonl
// ({"text": ...} per line) into `out_dir` atomically.
FortunesCorpus build_fortunes_corpus(const std::string& src_dir, const std::string& out_dir,
                                     double valid_fraction);

}  // namespace reef
