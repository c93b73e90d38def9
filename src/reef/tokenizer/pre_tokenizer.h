// The pre-tokenizer pipeline of a Hugging Face tokenizer.json (Split, ByteLevel, Metaspace,
// Digits, Punctuation, Sequence), splitting text into the words that BPE then merges. Words stay
// raw bytes: the byte-to-unicode mapping of ByteLevel is folded into the BPE vocabulary, which is
// keyed by bytes.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "reef/tokenizer/regex.h"

namespace reef {

// GPT-2's pre-tokenization regex, used by ByteLevel with use_regex.
extern const char* const kGpt2Pattern;

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// A Metaspace pre-tokenizer's or decoder's prepend scheme: "always", "first" or "never" (from
// prepend_scheme, else the legacy add_prefix_space flag).
std::string metaspace_prepend_scheme(const nlohmann::json& spec, const std::string& file);

class PreTokenizer {
 public:
  // Builds from the "pre_tokenizer" JSON (null allowed); `file` names tokenizer.json for errors.
  PreTokenizer(const nlohmann::json& spec, const std::string& file);
  // Splits `text` into words appended to `out`. `at_start` says that `text` begins the input
  // (HF: its original offset is 0), where Metaspace's "first" scheme prepends. Invalid UTF-8
  // runs bypass the regexes and become words of their own, so byte-level encoding still
  // round-trips arbitrary bytes.
  void split(std::string_view text, std::vector<std::string>& out, bool at_start = true) const;
  bool has_byte_level() const { return has_byte_level_; }

 private:
  enum class Kind { kByteLevel, kSplit, kMetaspace };
  struct Step {
    Kind kind = Kind::kSplit;
    bool add_prefix_space = false;  // ByteLevel
    std::shared_ptr<Regex> regex;   // null: no split (ByteLevel with use_regex false)
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    std::string replacement;     // Metaspace
    std::string prepend_scheme;  // Metaspace: always, first, never
    bool metaspace_split = true;
  };
  struct Piece {
    std::string text;
    bool at_start;  // begins the input
    bool opaque;    // invalid UTF-8: no further step touches it
  };
  void add_steps(const nlohmann::json& spec, const std::string& file);
  static void apply(const Step& step, Piece& piece, std::vector<Piece>& out);

  std::vector<Step> steps_;
  bool has_byte_level_ = false;
};

}  // namespace reef
