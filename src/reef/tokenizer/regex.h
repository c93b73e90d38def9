// A compiled PCRE2 (UTF + UCP, JIT when available) regex for pre-tokenization: the Oniguruma-
// style patterns in tokenizer.json and the tiktoken patterns run unchanged (`$` is end of text,
// as in tiktoken; HF patterns do not use it), except that `\s`
// is widened to Oniguruma's Unicode White_Space set (PCRE2's leaves out U+0085).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace reef {

class Regex {
 public:
  // `context` names where the pattern came from, for the error on a bad pattern.
  Regex(const std::string& pattern, const std::string& context);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of the successive non-overlapping, non-empty matches in
  // `text`, which must be valid UTF-8 (see valid_utf8_prefix).
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::string pattern_;
  std::unique_ptr<Impl> impl_;
};

// Length of the longest prefix of `s` that is valid UTF-8.
size_t valid_utf8_prefix(std::string_view s);
// Length of the valid UTF-8 character at s[i] (i < s.size()), or 0 when none starts there.
size_t utf8_char_len(std::string_view s, size_t i);
// Length of the invalid run at the start of `s` before valid UTF-8 resumes (at least 1).
size_t invalid_utf8_run(std::string_view s);

// Oniguruma's `\s` (Unicode White_Space) in a PCRE2 pattern; exposed for tests.
std::string widen_whitespace_classes(const std::string& pattern);

}  // namespace reef
