// Implementation of data/documents.h.
#include "reef/data/documents.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "reef/base/compressed.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/hash.h"
#include "reef/base/strings.h"

namespace reef {
namespace {

std::vector<std::string> read_text_documents(const std::string& content) {
  std::vector<std::string> docs;
  std::string cur;
  size_t pos = 0;
  while (pos <= content.size()) {
    size_t nl = content.find('\n', pos);
    if (nl == std::string::npos) nl = content.size();
    std::string line = content.substr(pos, nl - pos);
    bool blank = line.find_first_not_of(" \t\r") == std::string::npos;
    if (blank) {
      if (!cur.empty()) docs.push_back(std::move(cur));
      cur.clear();
    } else {
      if (!cur.empty()) cur.push_back('\n');
      cur += line;
    }
    pos = nl + 1;
  }
  if (!cur.empty()) docs.push_back(std::move(cur));
  return docs;
}

std::vector<std::string> read_jsonl_documents(const std::string& path, const std::string& content,
                                              const std::string& text_key) {
  std::vector<std::string> docs;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < content.size()) {
    size_t nl = content.find('\n', pos);
    if (nl == std::string::npos) nl = content.size();
    ++line_no;
    std::string_view line(content.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      usage_error("{}:{}: malformed JSON: {}", path, line_no, e.what());
    }
    if (!j.is_object()) usage_error("{}:{}: expected a JSON object per line", path, line_no);
    auto it = j.find(text_key);
    if (it == j.end()) usage_error("{}:{}: no '{}' field (data.text_key)", path, line_no, text_key);
    if (!it->is_string()) usage_error("{}:{}: field '{}' is not a string", path, line_no, text_key);
    docs.push_back(it->get<std::string>());
  }
  return docs;
}

}  // namespace

bool is_jsonl_path(const std::string& path) {
  const std::string plain = strip_compression_suffix(path);
  return ends_with(plain, ".jsonl") || ends_with(plain, ".json");
}

std::vector<std::string> read_documents(const std::string& path, const std::string& format,
                                        const std::string& text_key) {
  if (!path_exists(path)) usage_error("data file not found: {}", path);
  std::string fmt = format;
  if (fmt == "auto") fmt = is_jsonl_path(path) ? "jsonl" : "text";
  std::string content = read_file_decompressed(path);
  if (fmt == "jsonl") return read_jsonl_documents(path, content, text_key);
  if (fmt == "text") return read_text_documents(content);
  usage_error("data.format: unknown format '{}' (expected auto, text or jsonl)", format);
}

void split_documents(std::vector<std::string> docs, double valid_fraction,
                     std::vector<std::string>* train, std::vector<std::string>* valid) {
  const uint64_t cut = static_cast<uint64_t>(valid_fraction * 18446744073709551615.0);
  for (auto& d : docs) {
    if (valid_fraction > 0 && xxh64(d) < cut)
      valid->push_back(std::move(d));
    else
      train->push_back(std::move(d));
  }
}

TokenStream tokenize_documents(const std::vector<std::string>& docs, const Tokenizer& tok) {
  TokenStream s;
  for (const auto& d : docs) {
    auto ids = tok.encode(d);
    s.tokens.insert(s.tokens.end(), ids.begin(), ids.end());
    s.tokens.push_back(tok.eos_id());
  }
  s.n_documents = static_cast<int64_t>(docs.size());
  return s;
}

TokenWindows::TokenWindows(std::shared_ptr<const TokenStream> stream, int64_t seq_len,
                           uint64_t seed, bool shuffle, int64_t epochs)
    : stream_(std::move(stream)),
      seq_len_(seq_len),
      epochs_(epochs),
      seed_(seed),
      shuffle_(shuffle) {
  const auto n_tokens = static_cast<int64_t>(stream_->tokens.size());
  if (seq_len <= 0) usage_error("data.seq_len={}: must be positive", seq_len);
  n_windows_ = n_tokens > seq_len ? (n_tokens - 1) / seq_len : 0;
  if (n_windows_ == 0)
    usage_error(
        "data: {} tokens cannot fill one sample of data.seq_len={} (+1); add data or lower seq_len",
        n_tokens, seq_len);
}

int64_t TokenWindows::num_samples() const {
  if (epochs_ > 0) return n_windows_ * epochs_;
  return std::numeric_limits<int64_t>::max() / 2;
}

int64_t TokenWindows::window_start(int64_t i) const {
  if (i < 0 || i >= num_samples()) fail("data: sample {} out of range [0, {})", i, num_samples());
  const int64_t epoch = i / n_windows_, k = i % n_windows_;
  if (!shuffle_) return k * seq_len_;
  std::lock_guard<std::mutex> lock(mu_);
  if (cached_epoch_ != epoch) {
    order_.resize(static_cast<size_t>(n_windows_));
    for (int64_t w = 0; w < n_windows_; ++w) order_[static_cast<size_t>(w)] = w;
    // Epoch e's order comes from its own seed: no state carries over between epochs.
    SplitMix64 g(seed_ ^ 0x7769'6e64'6f77'7300ULL);
    const uint64_t base = g.next();
    seeded_shuffle(order_.data(), n_windows_,
                   base + static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ULL);
    cached_epoch_ = epoch;
  }
  return order_[static_cast<size_t>(k)] * seq_len_;
}

void TokenWindows::sample(int64_t i, std::vector<int32_t>* out) const {
  const int64_t start = window_start(i);
  const auto* p = stream_->tokens.data() + start;
  out->assign(p, p + seq_len_ + 1);
}

uint64_t TokenWindows::fingerprint() const {
  std::string k = "reef-token-windows-v1";
  const uint64_t parts[4] = {
      xxh64(stream_->tokens.data(), stream_->tokens.size() * sizeof(int32_t)),
      static_cast<uint64_t>(seq_len_), seed_, shuffle_ ? 1u : 0u};
  k.append(reinterpret_cast<const char*>(parts), sizeof(parts));
  return xxh64(k);
}

}  // namespace reef
