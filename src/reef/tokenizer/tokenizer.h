// The tokenizer interface every layer codes against, and the byte-level tokenizer (256 byte
// symbols plus specials) that the foundation trains with. The byte tokenizer is saved as a
// Hugging Face tokenizer.json (byte-level BPE with no merges) so that a Reef checkpoint folder
// carries a tokenizer `tokenizers`/`transformers` load and that encodes identically.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reef {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string name() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Plain text to ids. Special-token text is NOT parsed into special ids (it stays ordinary
  // bytes, so a document quoting "<|endoftext|>" cannot end itself); HF tokenizers would parse it.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Ids to text; special ids are dropped unless keep_special.
  virtual std::string decode(const std::vector<int32_t>& ids, bool keep_special = false) const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int32_t pad_id() const = 0;
  // Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into `dir`.
  virtual void save(const std::string& dir) const = 0;
};

// 0..255 are the bytes; 256 <|endoftext|> (document separator, bos and eos); 257 <|pad|>.
class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kEndOfText = 256;
  static constexpr int32_t kPad = 257;
  std::string name() const override { return "byte"; }
  int64_t vocab_size() const override { return 258; }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids, bool keep_special = false) const override;
  int32_t bos_id() const override { return kEndOfText; }
  int32_t eos_id() const override { return kEndOfText; }
  int32_t pad_id() const override { return kPad; }
  void save(const std::string& dir) const override;
};

// The tokenizer named by data.tokenizer: "byte", or a path that load_tokenizer accepts; throws a
// usage error for anything else.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name);

// Loads a tokenizer from a model folder or a file: a folder's tokenizer_config.json with
// "reef_tokenizer": "byte" gives the ByteTokenizer; otherwise tokenizer.json (byte-level or
// byte-fallback BPE, see hf_tokenizer.h) with tokenizer_config.json beside it when present; a
// `.tiktoken` rank file
// (cl100k_base spec, or o200k_base when its name says so), a SentencePiece `.model`, or a folder
// holding one of these (tokenizer.json is preferred).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir_or_file);

// GPT-2's byte-to-unicode table: the printable stand-in for each byte in byte-level BPE
// vocabularies.
std::string byte_to_unicode(uint8_t b);

}  // namespace reef
