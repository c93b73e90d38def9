// Loading and running tiktoken rank files (see tiktoken_tokenizer.h). The split is a Split
// pre-tokenizer with the encoding's regex; merging is BpeModel with rank == id, which is
// tiktoken's rule (merge the adjacent pair whose concatenation has the lowest rank).
#include "reef/tokenizer/tiktoken_tokenizer.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"

namespace reef {

const char* const kCl100kPattern =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s)";
const char* const kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

TiktokenSpec cl100k_spec() {
  return {kCl100kPattern,
          {{"<|endoftext|>", 100257},
           {"<|fim_prefix|>", 100258},
           {"<|fim_middle|>", 100259},
           {"<|fim_suffix|>", 100260},
           {"<|endofprompt|>", 100276}},
          "<|endoftext|>"};
}

TiktokenSpec o200k_spec() {
  return {kO200kPattern, {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}, "<|endoftext|>"};
}

namespace {

bool base64_decode(const std::string& in, std::string* out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = val(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

}  // namespace

TiktokenTokenizer::TiktokenTokenizer(const std::string& rank_file, TiktokenSpec spec)
    : file_(rank_file), spec_(std::move(spec)) {
  rank_text_ = read_file(rank_file);
  bpe_.set_ignore_merges(true);
  bpe_.set_rank_by_id(true);
  std::istringstream lines(rank_text_);
  std::string line, bytes;
  int line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    int32_t rank = -1;
    try {
      if (sp != std::string::npos) rank = std::stoi(line.substr(sp + 1));
    } catch (const std::exception&) {
    }
    if (rank < 0 || !base64_decode(line.substr(0, sp), &bytes))
      fail("{}:{}: expected '<base64 token> <rank>'", file_, line_no);
    bpe_.add_token(bytes, rank);
    if (bytes_of_id_.size() <= static_cast<size_t>(rank)) bytes_of_id_.resize(rank + 1);
    bytes_of_id_[rank] = bytes;
  }
  for (const auto& [text, id] : spec_.special_tokens) {
    if (bytes_of_id_.size() <= static_cast<size_t>(id)) bytes_of_id_.resize(id + 1);
    bytes_of_id_[id] = text;
  }
  special_id_.assign(bytes_of_id_.size(), false);
  for (const auto& kv : spec_.special_tokens) special_id_[kv.second] = true;
  vocab_size_ = static_cast<int64_t>(bytes_of_id_.size());
  auto eos = spec_.special_tokens.find(spec_.eos_token);
  eos_id_ = eos == spec_.special_tokens.end() ? -1 : eos->second;
  nlohmann::json pre = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", spec_.pattern}}}, {"behavior", "Isolated"}},
        {{"type", "ByteLevel"}, {"use_regex", false}}}}};
  pre_ = std::make_unique<PreTokenizer>(pre, file_);
}

void TiktokenTokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  thread_local std::vector<std::string> words;
  words.clear();
  pre_->split(text, words);
  for (const auto& w : words) bpe_.encode_word(w, out);
}

std::vector<int32_t> TiktokenTokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (!parse_special || spec_.special_tokens.empty()) {
    encode_ordinary(text, out);
    return out;
  }
  // Leftmost special token (longest on ties), as tiktoken's special regex alternation.
  size_t start = 0;
  while (start <= text.size()) {
    size_t best_pos = std::string_view::npos, best_len = 0;
    int32_t best_id = -1;
    for (const auto& [tok, id] : spec_.special_tokens) {
      size_t p = text.find(tok, start);
      if (p == std::string_view::npos) continue;
      if (p < best_pos || (p == best_pos && tok.size() > best_len))
        best_pos = p, best_len = tok.size(), best_id = id;
    }
    if (best_id < 0) {
      encode_ordinary(text.substr(start), out);
      break;
    }
    encode_ordinary(text.substr(start, best_pos - start), out);
    out.push_back(best_id);
    start = best_pos + best_len;
  }
  return out;
}

std::string TiktokenTokenizer::decode(const std::vector<int32_t>& ids, bool keep_special) const {
  return decode_id_bytes(bytes_of_id_, special_id_, ids, keep_special, file_);
}

void TiktokenTokenizer::save(const std::string& dir) const {
  make_dirs(dir);
  write_file_atomic(join_path(dir, "tokenizer.tiktoken"), rank_text_);
  nlohmann::json cfg = {{"reef_tokenizer", "tiktoken"},
                        {"pattern", spec_.pattern},
                        {"special_tokens", spec_.special_tokens},
                        {"eos_token", spec_.eos_token}};
  write_file_atomic(join_path(dir, "tokenizer_config.json"), cfg.dump(2));
}

}  // namespace reef
