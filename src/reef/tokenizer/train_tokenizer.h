// The `reef tokenizer train` job: checks the inputs and the output folder, feeds every document
// to a BpeTrainer with a progress display, trains, writes DIR/tokenizer.json and friends and
// reloads them as a check. Documents come through `read_documents` (the data layer's reader, which
// this layer cannot include); the caller reports the result.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reef/tokenizer/bpe_trainer.h"

namespace reef {

struct TrainTokenizerOptions {
  std::vector<std::string> inputs;  // .txt / .jsonl files
  std::string output;               // the folder to write
  std::string format = "auto", text_key = "text";
  std::string progress = "auto";  // auto, on, off (plain lines) or none
  BpeTrainerOptions bpe;          // bpe.threads 0: every core
  // Reads one input file's documents (path, format, text_key).
  std::function<std::vector<std::string>(const std::string&, const std::string&,
                                         const std::string&)>
      read_documents;
};

struct TrainTokenizerResult {
  int64_t documents = 0, bytes = 0, unique_words = 0;
  int64_t vocab_size = 0, special_tokens = 0, merges = 0;
  double total_s = 0, count_s = 0, merge_s = 0, write_s = 0;
  std::string tokenizer_json;  // OUTPUT/tokenizer.json
};

// Throws a usage error (naming the --flag) for a missing input, a bad format, a bad BPE option,
// an output folder that cannot be created, or inputs without documents.
TrainTokenizerResult train_tokenizer(const TrainTokenizerOptions& opts);

}  // namespace reef
