// The pre-tokenizer pipeline of a Hugging Face tokenizer.json (Split, ByteLevel, Sequence),
// splitting text into the words that BPE then merges. Words stay raw bytes: the byte-to-unicode
// mapping of ByteLevel is folded into the BPE vocabulary, which is keyed by bytes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "reef/tokenizer/regex.h"

namespace reef {

// GPT-2's pre-tokenization regex, used by ByteLevel with use_regex.
extern const char* const kGpt2Pattern;

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

class PreTokenizer {
 public:
  // Builds from the "pre_tokenizer" JSON (null allowed); `file` names tokenizer.json for errors.
  PreTokenizer(const nlohmann::json& spec, const std::string& file);
  // Splits `text` into words appended to `out`. Invalid UTF-8 runs bypass the regexes and become
  // words of their own, so byte-level encoding still round-trips arbitrary bytes.
  void split(std::string_view text, std::vector<std::string>& out) const;
  bool has_byte_level() const { return has_byte_level_; }

 private:
  struct Step {
    bool byte_level = false;
    bool add_prefix_space = false;
    std::shared_ptr<Regex> regex;  // null: no split (ByteLevel with use_regex false)
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
  };
  void add_steps(const nlohmann::json& spec, const std::string& file);
  static void apply(const Step& step, const std::string& piece, std::vector<std::string>& out);

  std::vector<Step> steps_;
  bool has_byte_level_ = false;
};

}  // namespace reef
