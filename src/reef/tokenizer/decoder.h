// The decoder of a Hugging Face tokenizer.json (ByteLevel, Metaspace, Replace, ByteFallback,
// Fuse, Strip, Sequence): turns the vocabulary strings of a list of ids back into text, step by
// step over the token list as `tokenizers`' decode_chain does. Bytes stay exact: where HF would
// put U+FFFD for a byte sequence that is not valid UTF-8, Reef returns the bytes themselves.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace reef {

class Regex;

class Decoder {
 public:
  // Builds from the "decoder" JSON; null means HF's default (tokens joined with spaces). `file`
  // names tokenizer.json for errors.
  Decoder(const nlohmann::json& spec, const std::string& file);
  ~Decoder();
  // True when the decoder is exactly ByteLevel: decoding is then the concatenation of each
  // token's bytes, which callers may precompute.
  bool byte_level_only() const { return steps_.size() == 1 && steps_[0].kind == Kind::kByteLevel; }
  std::string decode(std::vector<std::string> tokens) const;

 private:
  enum class Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip };
  struct Step {
    Kind kind;
    std::string a, b;              // Replace: a -> b; Metaspace: a is the replacement
    std::shared_ptr<Regex> regex;  // Replace with a Regex pattern
    size_t start = 0, stop = 0;    // Strip
    bool prepend = true;           // Metaspace: prepend_scheme is not "never"
  };
  void add_steps(const nlohmann::json& spec, const std::string& file);
  static void apply(const Step& step, std::vector<std::string>& tokens);

  std::vector<Step> steps_;
  bool join_with_spaces_ = false;  // null decoder
};

// A byte-level vocabulary string's bytes under GPT-2's byte-to-unicode mapping; false when a
// character is outside the table.
bool unmap_byte_level(std::string_view token, std::string* bytes);

}  // namespace reef
