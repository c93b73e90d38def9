// The normalizer of a Hugging Face tokenizer.json (NFC/NFKC/NFD/NFKD, Lowercase, StripAccents,
// Strip, Prepend, Replace, Sequence), with `tokenizers` semantics, plus the UTF-8 helpers the
// tokenizer pipeline shares. Unicode data comes from ICU. Reef accepts any bytes where HF takes
// only valid Unicode: invalid UTF-8 bytes pass through every step unchanged.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "reef/tokenizer/regex.h"  // utf8_char_len

namespace reef {

class Regex;

// Code point returned by next_code_point for a byte that starts no valid UTF-8 character.
constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFF;

// A Replace step of a normalizer or decoder: spec {"pattern": {"String": s} or {"Regex": r},
// "content": c}. Sets *from (String) or *regex (Regex), and *to; `what` names the step in errors.
void parse_replace_spec(const nlohmann::json& spec, const std::string& what, std::string* from,
                        std::shared_ptr<Regex>* regex, std::string* to);
// Replaces every match of `regex` (within valid UTF-8 runs; invalid bytes are kept as they are),
// or, without a regex, every occurrence of `from`, left to right, by `to`.
void apply_replace(std::string& text, const std::string& from, const Regex* regex,
                   const std::string& to);

// The code point at s[i], advancing i past it; an invalid byte gives kInvalidCodePoint and
// advances one byte.
uint32_t next_code_point(std::string_view s, size_t& i);
// Appends the UTF-8 encoding of `cp`.
void append_utf8(uint32_t cp, std::string& out);
// Unicode White_Space, as Rust's char::is_whitespace (false for kInvalidCodePoint).
bool is_white_space(uint32_t cp);

class Normalizer {
 public:
  // Builds from the "normalizer" JSON (null allowed: no normalization); `file` names
  // tokenizer.json for errors.
  Normalizer(const nlohmann::json& spec, const std::string& file);
  ~Normalizer();
  bool empty() const { return steps_.empty(); }
  // Normalizes `text` in place.
  void normalize(std::string& text) const;

 private:
  enum class Kind { kUnicode, kLowercase, kStripAccents, kStrip, kPrepend, kReplace };
  struct Step {
    Kind kind;
    const void* icu = nullptr;         // icu::Normalizer2 for kUnicode
    std::string a, b;                  // Prepend: a; Replace: literal a (when no regex) -> b
    std::shared_ptr<Regex> regex;      // Replace with a Regex pattern
    bool left = false, right = false;  // Strip
  };
  void add_steps(const nlohmann::json& spec, const std::string& file);
  static void apply(const Step& step, std::string& text);

  std::vector<Step> steps_;
};

}  // namespace reef
