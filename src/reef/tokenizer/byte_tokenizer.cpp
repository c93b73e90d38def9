// The byte-level tokenizer and its tokenizer.json export (see tokenizer.h).
#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids, bool keep_special) const {
  std::string out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id >= 0 && id < 256) {
      out.push_back(static_cast<char>(id));
    } else if (keep_special) {
      out += id == kEndOfText ? "<|endoftext|>" : id == kPad ? "<|pad|>" : "<|unk|>";
    }
  }
  return out;
}

std::string byte_to_unicode(uint8_t b) {
  // Printable bytes map to themselves; the others to U+0100 upwards, in byte order (GPT-2).
  auto printable = [](int c) {
    return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
  };
  int cp = b;
  if (!printable(b)) {
    int n = 0;
    for (int c = 0; c < b; ++c)
      if (!printable(c)) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

void ByteTokenizer::save(const std::string& dir) const {
  using nlohmann::json;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<uint8_t>(b))] = b;
  auto added = [](int id, const char* content) {
    return json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", json::array({added(kEndOfText, "<|endoftext|>"), added(kPad, "<|pad|>")})},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", false}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", false}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", json::array()}}},
  };
  json cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
              {"bos_token", "<|endoftext|>"},
              {"eos_token", "<|endoftext|>"},
              {"pad_token", "<|pad|>"},
              {"unk_token", nullptr},
              {"model_max_length", 1000000000},
              {"clean_up_tokenization_spaces", false},
              {"reef_tokenizer", "byte"}};
  json special = {
      {"bos_token", "<|endoftext|>"}, {"eos_token", "<|endoftext|>"}, {"pad_token", "<|pad|>"}};
  write_file_atomic(join_path(dir, "tokenizer.json"), tok.dump(2));
  write_file_atomic(join_path(dir, "tokenizer_config.json"), cfg.dump(2));
  write_file_atomic(join_path(dir, "special_tokens_map.json"), special.dump(2));
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  if (path_exists(name)) return load_tokenizer(name);
  usage_error(
      "data.tokenizer: unknown tokenizer '{}' (expected: byte, or a tokenizer folder or file)",
      name);
}

}  // namespace reef
