// tiktoken rank files (`<base64 token> <rank>` per line, the cl100k_base / o200k_base format):
// byte-level BPE where a token's rank is both its id and its merge priority, with the
// encoding's split regex and special tokens.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "reef/tokenizer/bpe_model.h"
#include "reef/tokenizer/pre_tokenizer.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct TiktokenSpec {
  std::string pattern;
  std::map<std::string, int32_t> special_tokens;
  std::string eos_token;  // one of special_tokens; also bos and pad
};

extern const char* const kCl100kPattern;
extern const char* const kO200kPattern;
// The published regex and special tokens of OpenAI's encodings.
TiktokenSpec cl100k_spec();
TiktokenSpec o200k_spec();

class TiktokenTokenizer : public Tokenizer {
 public:
  TiktokenTokenizer(const std::string& rank_file, TiktokenSpec spec);

  std::string name() const override { return "tiktoken"; }
  int64_t vocab_size() const override { return vocab_size_; }
  // As tiktoken's encode_ordinary: special-token text stays text.
  std::vector<int32_t> encode(std::string_view text) const override { return encode(text, false); }
  // parse_special: as tiktoken's encode(text, allowed_special="all").
  std::vector<int32_t> encode(std::string_view text, bool parse_special) const;
  std::string decode(const std::vector<int32_t>& ids, bool keep_special = false) const override;
  int32_t bos_id() const override { return eos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  int32_t pad_id() const override { return eos_id_; }
  // Writes the rank file as tokenizer.tiktoken plus tokenizer_config.json naming the spec.
  void save(const std::string& dir) const override;

 private:
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;

  std::string file_;
  TiktokenSpec spec_;
  BpeModel bpe_;
  std::unique_ptr<PreTokenizer> pre_;
  std::vector<std::string> bytes_of_id_;
  std::vector<bool> special_id_;
  std::string rank_text_;
  int64_t vocab_size_ = 0;
  int32_t eos_id_ = -1;
};

}  // namespace reef
