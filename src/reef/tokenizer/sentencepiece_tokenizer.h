// SentencePiece `.model` files (Llama 2, Mistral 7B, Gemma) through libsentencepiece, so Reef
// encodes exactly as the reference implementation without reimplementing its normalizer.
#pragma once

#include <memory>
#include <string>

#include "reef/tokenizer/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace reef {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_file);
  ~SentencePieceTokenizer() override;

  std::string name() const override { return "sentencepiece"; }
  int64_t vocab_size() const override;
  // As SentencePieceProcessor::EncodeAsIds: no BOS/EOS; control-token text stays text.
  std::vector<int32_t> encode(std::string_view text) const override;
  // Control ids (bos/eos/pad) are dropped unless keep_special, when their piece text is written.
  std::string decode(const std::vector<int32_t>& ids, bool keep_special = false) const override;
  int32_t bos_id() const override { return bos_id_; }  // -1 when the model has none
  int32_t eos_id() const override { return eos_id_; }
  int32_t pad_id() const override { return pad_id_; }  // eos when the model has no pad
  // Writes tokenizer.model and a tokenizer_config.json naming it.
  void save(const std::string& dir) const override;

 private:
  std::string file_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
};

}  // namespace reef
