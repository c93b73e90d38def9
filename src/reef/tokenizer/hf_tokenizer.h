// A Hugging Face tokenizer.json with a BPE model, loaded natively so that Reef encodes and decodes
// exactly as `tokenizers` does: the byte-level kind (GPT-2, Llama 3, Qwen2/3, SmolLM) and the
// character-level kind with byte fallback converted from SentencePiece (Llama 2, Mistral,
// TinyLlama, Gemma), with normalizers, pre-tokenizers, decoders and post-processors; the special
// tokens and chat template from tokenizer_config.json are kept beside it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "reef/tokenizer/bpe_model.h"
#include "reef/tokenizer/decoder.h"
#include "reef/tokenizer/normalizer.h"
#include "reef/tokenizer/pre_tokenizer.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

struct EncodeOptions {
  // Apply the post-processor (e.g. Llama 3's leading <|begin_of_text|>), as HF's
  // encode(..., add_special_tokens=True).
  bool add_special_tokens = false;
  // Turn special-token text in the input into special ids, as HF does by default. Off in the
  // Tokenizer::encode overload: a document quoting "<|endoftext|>" must not end itself.
  bool parse_special = false;
};

class HfTokenizer : public Tokenizer {
 public:
  // `tokenizer_json` is the path of tokenizer.json; `config_json` of tokenizer_config.json, or
  // empty when there is none.
  HfTokenizer(const std::string& tokenizer_json, const std::string& config_json);

  std::string name() const override { return "hf-bpe"; }
  int64_t vocab_size() const override { return vocab_size_; }
  std::vector<int32_t> encode(std::string_view text) const override { return encode(text, {}); }
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opts) const;
  std::string decode(const std::vector<int32_t>& ids, bool keep_special = false) const override;
  int32_t bos_id() const override { return bos_id_; }  // -1 when the tokenizer has none
  int32_t eos_id() const override { return eos_id_; }
  int32_t pad_id() const override { return pad_id_; }  // eos when no pad token is configured
  void save(const std::string& dir) const override;

  const std::string& chat_template() const { return chat_template_; }
  // Id of a token by its vocabulary string (as in tokenizer.json), or -1.
  int32_t token_to_id(const std::string& token) const;
  // The tokenizer.json string of an id, or "" for an unknown id.
  std::string id_to_token(int32_t id) const;
  // The input text a token stands for: its bytes for byte-level vocabularies and added tokens;
  // otherwise the string with "▁" as a space and <0xXX> as that byte. Concatenated over an
  // encoding this gives back the (normalized) input, plus any space a Metaspace/Prepend step
  // inserted: what aligning tokens with text offsets needs.
  std::string token_text(int32_t id) const;

 private:
  struct AddedToken {
    std::string content;
    std::string match;  // what is matched: the content, normalized when `normalized`
    int32_t id;
    bool special, normalized, lstrip, rstrip, single_word;
  };
  struct TemplatePiece {
    bool is_sequence;
    std::vector<int32_t> ids;  // for special pieces
  };
  void load_model(const nlohmann::json& model);
  void load_added_tokens(const nlohmann::json& added);
  void load_post_processor(const nlohmann::json& spec);
  void load_config(const std::string& config_json);
  // Pre-tokenizes and merges a normalized run; `at_start`: it begins the input.
  void encode_plain(std::string_view text, bool at_start, std::vector<int32_t>& out) const;
  const AddedToken* match_added(std::string_view text, size_t pos, bool normalized_pass,
                                size_t* begin, size_t* end) const;
  // Splits `text` on the added tokens of one pass (raw text: non-normalized tokens; then each
  // gap normalized: normalized tokens); the gaps of the last pass go to encode_plain.
  void split_on_added(std::string_view text, bool normalized_pass, bool at_start,
                      bool parse_special, std::vector<int32_t>& out) const;

  std::string file_;
  std::string json_text_, config_text_, special_map_text_;
  std::map<std::string, std::string>
      template_files_;  // chat_template.jinja etc. (relative path -> text)
  BpeModel bpe_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_;
  std::unique_ptr<Decoder> decoder_;
  bool byte_level_ = false;  // ByteLevel pre-tokenizer: the vocabulary is GPT-2-mapped bytes
  std::vector<AddedToken> added_;
  std::vector<std::vector<size_t>> added_by_first_byte_;  // 256 buckets of indexes into added_
  bool has_raw_added_ = false, has_normalized_added_ = false;
  std::vector<std::string> token_of_id_;  // tokenizer.json strings
  std::vector<std::string> bytes_of_id_;  // byte level: decoded bytes
  std::vector<bool> special_id_;
  std::unordered_map<std::string, int32_t> id_of_token_;
  std::vector<TemplatePiece> template_;  // empty: no post-processing
  int64_t vocab_size_ = 0;
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  std::string chat_template_;
};

// `text` as a call of the model's transformers tokenizer encodes it: special-token text becomes
// the special ids and, with add_special_tokens, the post-processor adds its tokens (a tokenizer
// that is not an HfTokenizer: its bos id first, when it has one).
std::vector<int32_t> encode_like_transformers(const Tokenizer& tokenizer, const std::string& text,
                                              bool add_special_tokens);

// A prompt given as text (`reef generate`, `reef serve`'s completions), encoded as vLLM and
// transformers' tokenizer(text) do: special-token text parsed and the post-processor applied
// (a Llama tokenizer's BOS). Tokenizers that are not an HfTokenizer (Reef's byte tokenizer,
// tiktoken, SentencePiece files) encode it plainly: they have no post-processor to follow.
std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, const std::string& text);

}  // namespace reef
