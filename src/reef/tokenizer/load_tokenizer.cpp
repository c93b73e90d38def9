// load_tokenizer: picks the tokenizer implementation for a model folder or tokenizer file, so
// callers never need to know which format a checkpoint ships.
#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"
#include "reef/base/strings.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "reef/tokenizer/sentencepiece_tokenizer.h"
#include "reef/tokenizer/tiktoken_tokenizer.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

namespace {

// A bare rank file: the published spec chosen by its name (o200k_base or else cl100k_base).
std::unique_ptr<Tokenizer> load_rank_file(const std::string& file) {
  size_t slash = file.find_last_of('/');
  std::string base = slash == std::string::npos ? file : file.substr(slash + 1);
  return std::make_unique<TiktokenTokenizer>(
      file, base.find("o200k") != std::string::npos ? o200k_spec() : cl100k_spec());
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir_or_file) {
  if (!path_exists(dir_or_file)) usage_error("tokenizer: '{}' does not exist", dir_or_file);
  if (!is_directory(dir_or_file) && ends_with(dir_or_file, ".tiktoken"))
    return load_rank_file(dir_or_file);
  if (!is_directory(dir_or_file) && ends_with(dir_or_file, ".model"))
    return std::make_unique<SentencePieceTokenizer>(dir_or_file);
  std::string dir, file;
  if (is_directory(dir_or_file)) {
    dir = dir_or_file;
  } else {
    file = dir_or_file;
    size_t slash = file.find_last_of('/');
    dir = slash == std::string::npos ? "." : file.substr(0, slash);
  }
  std::string config = join_path(dir, "tokenizer_config.json");
  if (!path_exists(config)) config.clear();
  if (!config.empty()) {
    const nlohmann::json cfg = read_json_file(config);
    std::string kind = cfg.value("reef_tokenizer", "");
    if (kind == "byte") return std::make_unique<ByteTokenizer>();
    if (kind == "sentencepiece")
      return std::make_unique<SentencePieceTokenizer>(join_path(dir, "tokenizer.model"));
    if (kind == "tiktoken") {
      TiktokenSpec spec;
      try {
        spec.pattern = cfg.at("pattern").get<std::string>();
        spec.special_tokens = cfg.value("special_tokens", std::map<std::string, int32_t>{});
        spec.eos_token = cfg.value("eos_token", "");
      } catch (const nlohmann::json::exception& e) {
        fail("{}: bad tiktoken settings: {}", config, e.what());
      }
      return std::make_unique<TiktokenTokenizer>(join_path(dir, "tokenizer.tiktoken"), spec);
    }
    if (!kind.empty())
      fail("{}: unknown reef_tokenizer '{}' (expected: byte, tiktoken, sentencepiece)", config,
           kind);
  }
  if (file.empty()) {
    file = join_path(dir, "tokenizer.json");
    if (!path_exists(file)) {
      for (const char* name : {"tokenizer.tiktoken", "cl100k_base.tiktoken", "o200k_base.tiktoken"})
        if (path_exists(join_path(dir, name))) return load_rank_file(join_path(dir, name));
      if (path_exists(join_path(dir, "tokenizer.model")))
        return std::make_unique<SentencePieceTokenizer>(join_path(dir, "tokenizer.model"));
    }
    if (!path_exists(file))
      usage_error(
          "tokenizer: '{}' has no tokenizer.json (supported: Hugging Face BPE "
          "tokenizer.json, tokenizer.model (SentencePiece), tiktoken rank files, Reef byte "
          "tokenizer)",
          dir);
  }
  return std::make_unique<HfTokenizer>(file, config);
}

}  // namespace reef
