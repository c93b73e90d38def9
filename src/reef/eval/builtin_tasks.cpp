// Implementation of eval/builtin_tasks.h. Documents come from std::mt19937_64 with fixed seeds,
// so every build and platform sees the same ones; each task has a test and a train split (the
// latter for few-shot examples).
#include "reef/eval/builtin_tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>

namespace reef::eval {
namespace {

using json = nlohmann::json;

int64_t uniform(std::mt19937_64& g, int64_t lo, int64_t hi) {  // [lo, hi], portable
  return lo + static_cast<int64_t>(g() % static_cast<uint64_t>(hi - lo + 1));
}

std::vector<json> arithmetic_docs(uint64_t seed, int n) {
  std::mt19937_64 g(seed);
  std::vector<json> docs;
  for (int i = 0; i < n; ++i) {
    int64_t a = uniform(g, 1, 50), b = uniform(g, 1, 50), sum = a + b;
    std::vector<int64_t> choices = {sum};
    while (choices.size() < 4) {
      int64_t c = sum + uniform(g, -9, 9);
      if (c > 0 && std::find(choices.begin(), choices.end(), c) == choices.end())
        choices.push_back(c);
    }
    int64_t answer = uniform(g, 0, 3);
    std::swap(choices[0], choices[static_cast<size_t>(answer)]);
    json c = json::array();
    for (auto x : choices) c.push_back(std::to_string(x));
    docs.push_back({{"question", fmt::format("What is {} plus {}?", a, b)},
                    {"choices", c},
                    {"answer", answer}});
  }
  return docs;
}

std::vector<json> copy_docs(uint64_t seed, int n) {
  static const char* words[] = {"red",  "blue", "cat",  "dog",  "sun",
                                "moon", "tree", "hill", "fish", "bird"};
  std::mt19937_64 g(seed);
  std::vector<json> docs;
  for (int i = 0; i < n; ++i) {
    std::string text;
    for (int64_t k = uniform(g, 2, 4); k > 0; --k)
      text += std::string(text.empty() ? "" : " ") + words[uniform(g, 0, 9)];
    docs.push_back({{"text", text}});
  }
  return docs;
}

}  // namespace

const std::vector<std::string>& builtin_task_names() {
  static const std::vector<std::string> names = {"arithmetic", "copy"};
  return names;
}

std::optional<Task> make_builtin_task(const std::string& name) {
  TaskConfig c;
  c.task = name;
  c.source = "builtin";
  c.test_split = "test";
  c.training_split = "train";
  std::map<std::string, std::vector<json>> docs;
  if (name == "arithmetic") {
    c.output_type = OutputType::kMultipleChoice;
    c.doc_to_text = "Question: {{question}}\nAnswer:";
    c.doc_to_target = "answer";
    c.doc_to_choice = "choices";
    c.has_doc_to_choice = true;
    docs["test"] = arithmetic_docs(1, 100);
    docs["train"] = arithmetic_docs(2, 20);
  } else if (name == "copy") {
    c.output_type = OutputType::kGenerateUntil;
    c.doc_to_text = "Copy: {{text}}\nOutput:";
    c.doc_to_target = "text";
    c.until = {"\n"};
    c.has_until = true;
    c.max_gen_toks = 32;
    MetricConfig em{"exact_match"};
    em.regexes_to_ignore = {"^\\s+", "\\s+$"};
    c.metrics = {em};
    docs["test"] = copy_docs(3, 100);
    docs["train"] = copy_docs(4, 20);
  } else {
    return std::nullopt;
  }
  apply_task_defaults(c);
  c.raw = {{"task", name},
           {"output_type", output_type_name(c.output_type)},
           {"doc_to_text", c.doc_to_text},
           {"doc_to_target", c.doc_to_target},
           {"source", "builtin"}};
  return Task(std::move(c), std::move(docs));
}

}  // namespace reef::eval
