// SentencePiece through libsentencepiece (see sentencepiece_tokenizer.h).
#include "reef/tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"

namespace reef {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_file)
    : file_(model_file), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  if (!path_exists(model_file)) usage_error("tokenizer: '{}' does not exist", model_file);
  auto status = sp_->Load(model_file);
  if (!status.ok()) fail("{}: not a SentencePiece model: {}", model_file, status.ToString());
  bos_id_ = sp_->bos_id();
  eos_id_ = sp_->eos_id();
  pad_id_ = sp_->pad_id() >= 0 ? sp_->pad_id() : eos_id_;
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

int64_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto status = sp_->Encode(absl::string_view(text.data(), text.size()), &ids);
  if (!status.ok()) fail("{}: encode failed: {}", file_, status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SentencePieceTokenizer::decode(const std::vector<int32_t>& ids,
                                           bool keep_special) const {
  int n = sp_->GetPieceSize();
  std::string out;
  std::vector<int> run;  // ids decoded together, so byte pieces and spaces join correctly
  auto flush = [&] {
    if (run.empty()) return;
    std::string s;
    auto status = sp_->Decode(run, &s);
    if (!status.ok()) fail("{}: decode failed: {}", file_, status.ToString());
    out += s;
    run.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= n) fail("{}: cannot decode id {} (vocabulary size {})", file_, id, n);
    if (sp_->IsControl(id)) {
      if (keep_special) {
        flush();
        out += sp_->IdToPiece(id);
      }
      continue;
    }
    run.push_back(id);
  }
  flush();
  return out;
}

void SentencePieceTokenizer::save(const std::string& dir) const {
  make_dirs(dir);
  write_file_atomic(join_path(dir, "tokenizer.model"), read_file(file_));
  nlohmann::json cfg = {{"reef_tokenizer", "sentencepiece"}};
  if (bos_id_ >= 0) cfg["bos_token"] = sp_->IdToPiece(bos_id_);
  if (eos_id_ >= 0) cfg["eos_token"] = sp_->IdToPiece(eos_id_);
  write_file_atomic(join_path(dir, "tokenizer_config.json"), cfg.dump(2));
}

}  // namespace reef
