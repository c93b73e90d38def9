// `reef data synth`: a synthetic instruction set whose answers are exact, for fine-tuning demos
// and tests on the embedded default model: short string tasks over a small word list (repeat,
// reverse, first word, last word, word count) and single-digit addition. Records are
// prompt/completion pairs ("Reverse: red cat sun\nAnswer:" / " sun cat red"), so SFT puts the
// loss on the answer (and eos) and `reef eval` scores held-out items by exact match with the
// task YAML written beside them. Generation is deterministic in the seed (std::mt19937_64), and
// no test item's prompt appears in the training set.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace reef {

struct SynthOptions {
  std::string output;  // folder: train.jsonl, test.jsonl, synth.yaml, pairs.jsonl, test_pairs.jsonl
  int64_t train = 2000;  // training records
  int64_t test = 200;    // held-out records
  uint64_t seed = 1234;
  std::vector<std::string> tasks;  // empty = all of synth_task_names()
};

struct SynthItem {
  std::string task, prompt, completion;  // completion starts with a space
};

const std::vector<std::string>& synth_task_names();

// `n` items drawn round-robin over `tasks` from `seed` (no check against other sets).
std::vector<SynthItem> synth_items(const std::vector<std::string>& tasks, int64_t n, uint64_t seed);

struct SynthResult {
  std::string train_path, test_path, task_path;
  // Preference pairs of the same items (chosen: the answer; rejected: another item's answer to
  // the same task) for `reef align dpo`: pairs.jsonl (training), test_pairs.jsonl (held out).
  std::string pairs_path, test_pairs_path;
  int64_t train = 0, test = 0;
};

// Writes the three files (each atomically). The test items are drawn first and the training
// items skip every prompt the test set holds. Usage errors for an unknown task or bad counts.
SynthResult write_synth(const SynthOptions& options);

}  // namespace reef
