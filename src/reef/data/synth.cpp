// Implementation of data/synth.h.
#include "reef/data/synth.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "reef/base/error.h"
#include "reef/base/files.h"

namespace reef {
namespace {

const std::vector<std::string>& words() {
  static const std::vector<std::string> w = {"red",  "blue", "green", "cat",  "dog",  "sun",
                                             "moon", "tree", "fish",  "bird", "king", "ship",
                                             "rain", "book", "star",  "road"};
  return w;
}

int64_t uniform(std::mt19937_64& g, int64_t lo, int64_t hi) {  // [lo, hi], portable
  return lo + static_cast<int64_t>(g() % static_cast<uint64_t>(hi - lo + 1));
}

std::vector<std::string> pick_words(std::mt19937_64& g, int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(words()[static_cast<size_t>(uniform(g, 0, 15))]);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& w : v) s += (s.empty() ? "" : " ") + w;
  return s;
}

SynthItem make_item(const std::string& task, std::mt19937_64& g) {
  SynthItem it;
  it.task = task;
  auto qa = [&](const std::string& q, const std::string& a) {
    it.prompt = q + "\nAnswer:";
    it.completion = " " + a;
  };
  if (task == "add") {
    const int64_t a = uniform(g, 0, 9), b = uniform(g, 0, 9);
    qa(fmt::format("Add: {} + {}", a, b), std::to_string(a + b));
    return it;
  }
  auto w = pick_words(g, uniform(g, 2, 4));
  if (task == "repeat") {
    qa("Repeat: " + join(w), join(w));
  } else if (task == "reverse") {
    auto r = w;
    std::reverse(r.begin(), r.end());
    qa("Reverse: " + join(w), join(r));
  } else if (task == "first") {
    qa("First word: " + join(w), w.front());
  } else if (task == "last") {
    qa("Last word: " + join(w), w.back());
  } else if (task == "count") {
    qa("Count the words: " + join(w), std::to_string(w.size()));
  } else {
    fail("unknown synth task '{}' (internal error)", task);
  }
  return it;
}

std::string jsonl(const std::vector<SynthItem>& items) {
  std::string out;
  for (const auto& it : items)
    out += nlohmann::json{{"prompt", it.prompt}, {"completion", it.completion}, {"task", it.task}}
               .dump() +
           "\n";
  return out;
}

// Preference pairs: each item's answer is chosen, and the answer of the next item of the same
// task that differs from it is rejected (a plausible but wrong answer).
std::string pairs_jsonl(const std::vector<SynthItem>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    for (size_t k = 1; k < items.size(); ++k) {
      const SynthItem& o = items[(i + k) % items.size()];
      if (o.task != items[i].task || o.completion == items[i].completion) continue;
      out += nlohmann::json{{"prompt", items[i].prompt},
                            {"chosen", items[i].completion},
                            {"rejected", o.completion},
                            {"task", items[i].task}}
                 .dump() +
             "\n";
      break;
    }
  }
  return out;
}

}  // namespace

const std::vector<std::string>& synth_task_names() {
  static const std::vector<std::string> names = {"repeat", "reverse", "first",
                                                 "last",   "count",   "add"};
  return names;
}

std::vector<SynthItem> synth_items(const std::vector<std::string>& tasks, int64_t n,
                                   uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<SynthItem> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(make_item(tasks[static_cast<size_t>(i) % tasks.size()], g));
  return out;
}

SynthResult write_synth(const SynthOptions& o) {
  std::vector<std::string> tasks = o.tasks.empty() ? synth_task_names() : o.tasks;
  for (const auto& t : tasks)
    if (std::find(synth_task_names().begin(), synth_task_names().end(), t) ==
        synth_task_names().end())
      usage_error("--tasks: unknown task '{}'; the tasks are {}", t,
                  fmt::join(synth_task_names(), ", "));
  if (o.output.empty()) usage_error("--output: a folder is required");
  if (o.train < 1 || o.test < 1)
    usage_error("--train and --test must be at least 1 (got {} and {})", o.train, o.test);
  // Test items first; training items skip their prompts (a held-out item is never trained on).
  std::vector<SynthItem> test = synth_items(tasks, o.test, o.seed * 2 + 1);
  std::set<std::string> held;
  for (const auto& it : test) held.insert(it.prompt);
  std::vector<SynthItem> train;
  std::mt19937_64 g(o.seed * 2);
  int64_t tries = 0;
  while (static_cast<int64_t>(train.size()) < o.train) {
    if (++tries > 100 * o.train + 1000)
      usage_error("--train {}: the tasks {} have too few distinct items beside the {} test items",
                  o.train, fmt::join(tasks, ", "), o.test);
    SynthItem it = make_item(tasks[static_cast<size_t>(tries) % tasks.size()], g);
    if (!held.count(it.prompt)) train.push_back(std::move(it));
  }
  make_dirs(o.output);
  SynthResult r;
  r.train_path = join_path(o.output, "train.jsonl");
  r.test_path = join_path(o.output, "test.jsonl");
  r.task_path = join_path(o.output, "synth.yaml");
  r.pairs_path = join_path(o.output, "pairs.jsonl");
  r.test_pairs_path = join_path(o.output, "test_pairs.jsonl");
  r.train = static_cast<int64_t>(train.size());
  r.test = static_cast<int64_t>(test.size());
  write_file_atomic(r.train_path, jsonl(train));
  write_file_atomic(r.test_path, jsonl(test));
  write_file_atomic(r.pairs_path, pairs_jsonl(train));
  write_file_atomic(r.test_pairs_path, pairs_jsonl(test));
  // A reef eval (lm-eval style) task: greedy answer up to the end of the line, exact match.
  write_file_atomic(r.task_path,
                    "# Held-out items of `reef data synth`: reef eval --model DIR --tasks " +
                        r.task_path +
                        "\n"
                        "task: synth\n"
                        "dataset_path: json\n"
                        "dataset_kwargs:\n"
                        "  data_files:\n"
                        "    test: test.jsonl\n"
                        "test_split: test\n"
                        "output_type: generate_until\n"
                        "doc_to_text: \"{{prompt}}\"\n"
                        "doc_to_target: \"{{completion}}\"\n"
                        "target_delimiter: \"\"\n"
                        "generation_kwargs:\n"
                        "  until: [\"\\n\"]\n"
                        "  max_gen_toks: 16\n"
                        "metric_list:\n"
                        "  - metric: exact_match\n"
                        "    regexes_to_ignore: [\"^\\\\s+\", \"\\\\s+$\"]\n");
  return r;
}

}  // namespace reef
