// Benchmark: the constrained-decoding token mask (infer/json_constraint.h) over a synthetic
// 150,000-token vocabulary, in three decoding states, as the prefix tree (TokenTrie::allowed, what
// the engine uses) against the plain reference that reads every token (allowed_tokens). Prints
// the median of --reps runs of each and their ratio, and checks the masks are equal.
//
//   build/bin/bench_json_mask [--vocab 150000] [--reps 9]
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>

#include "reef/infer/json_constraint.h"

namespace {

double ms_median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t vocab_size = 150000, reps = 9;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--vocab")) vocab_size = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoll(argv[i + 1]);
  }
  // Token texts of 1-7 characters drawn from letters, digits, spaces and JSON punctuation.
  std::mt19937 rng(1);
  const std::string chars = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789{}[]\":,.-_";
  std::vector<std::string> vocab;
  for (int64_t i = 0; i < vocab_size; ++i) {
    std::string t;
    for (int j = 0, n = 1 + static_cast<int>(rng() % 7); j < n; ++j) t += chars[rng() % chars.size()];
    vocab.push_back(t);
  }
  auto t0 = std::chrono::steady_clock::now();
  reef::TokenTrie trie(vocab);
  const double build_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  auto grammar = reef::JsonGrammar::from_schema(nlohmann::json::parse(R"({"type": "object",
      "properties": {"name": {"type": "string"}, "items": {"type": "array", "items": {
        "type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
        "required": ["sku", "qty"]}}}, "required": ["name", "items"],
      "additionalProperties": false})"));
  std::cout << "json mask, " << vocab_size << " tokens (prefix tree built in " << build_ms
            << " ms), median of " << reps << ":\n";
  int failures = 0;
  for (const std::string prefix :
       {std::string(""), std::string(R"({"name":"ab)"),
        std::string(R"({"name":"ab","items":[{"sku":"x","qty":1)")}) {
    reef::JsonMatcher m(grammar);
    m.feed(prefix);
    std::vector<double> plain, tree;
    std::vector<bool> a, b;
    for (int64_t r = 0; r < reps; ++r) {
      auto s0 = std::chrono::steady_clock::now();
      a = reef::allowed_tokens(m, vocab, -1, 200);
      auto s1 = std::chrono::steady_clock::now();
      b = trie.allowed(m, -1, 200);
      auto s2 = std::chrono::steady_clock::now();
      plain.push_back(std::chrono::duration<double, std::milli>(s1 - s0).count());
      tree.push_back(std::chrono::duration<double, std::milli>(s2 - s1).count());
    }
    const int64_t n = std::count(a.begin(), a.end(), true);
    if (a != b) ++failures;
    std::cout << "  after '" << prefix << "': every token " << ms_median(plain) << " ms, prefix tree "
              << ms_median(tree) << " ms (" << ms_median(plain) / ms_median(tree) << "x), "
              << n << " allowed" << (a == b ? "" : ", MASKS DIFFER") << "\n";
  }
  return failures == 0 ? 0 : 1;
}
