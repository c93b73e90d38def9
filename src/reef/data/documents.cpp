// Implementation of data/documents.h.
#include "reef/data/documents.h"

#include <nlohmann/json.hpp>

#include <random>

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

std::vector<std::string> read_documents(const std::string& path, const std::string& format,
                                        const std::string& text_key) {
  if (!path_exists(path)) usage_error("data file not found: {}", path);
  std::string fmt = format;
  if (fmt == "auto") fmt = ends_with(path, ".jsonl") || ends_with(path, ".json") ? "jsonl" : "text";
  std::string content = read_file(path);
  if (fmt == "jsonl") return read_jsonl_documents(path, content, text_key);
  if (fmt == "text") return read_text_documents(content);
  usage_error("data.format: unknown format '{}' (expected auto, text or jsonl)", format);
}

void split_documents(std::vector<std::string> docs, double valid_fraction,
                     std::vector<std::string>* train, std::vector<std::string>* valid) {
  const uint64_t cut = static_cast<uint64_t>(valid_fraction * 18446744073709551615.0);
  for (auto& d : docs) {
    if (valid_fraction > 0 && xxh64(d) < cut) valid->push_back(std::move(d));
    else train->push_back(std::move(d));
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

WindowSampler::WindowSampler(int64_t n_tokens, int64_t seq_len, uint64_t seed, bool shuffle)
    : seq_len_(seq_len), seed_(seed), shuffle_(shuffle) {
  n_windows_ = n_tokens > seq_len ? (n_tokens - 1) / seq_len : 0;
  if (n_windows_ == 0)
    usage_error("data: {} tokens cannot fill one sample of data.seq_len={} (+1); add data or lower seq_len",
                n_tokens, seq_len);
  build_order();
}

void WindowSampler::build_order() {
  order_.resize(static_cast<size_t>(n_windows_));
  for (int64_t i = 0; i < n_windows_; ++i) order_[static_cast<size_t>(i)] = i;
  if (!shuffle_) return;
  // Fisher-Yates with a fixed engine, so the order is the same on every platform.
  std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(state_.epoch));
  for (int64_t i = n_windows_ - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(order_[static_cast<size_t>(i)], order_[static_cast<size_t>(j)]);
  }
}

int64_t WindowSampler::next() {
  if (state_.index >= n_windows_) {
    ++state_.epoch;
    state_.index = 0;
    build_order();
  }
  return order_[static_cast<size_t>(state_.index++)] * seq_len_;
}

void WindowSampler::set_state(const State& s) {
  if (s.index < 0 || s.index > n_windows_ || s.epoch < 0)
    fail("data position (epoch {}, index {}) does not fit this dataset of {} samples; "
         "did the data change since the checkpoint?", s.epoch, s.index, n_windows_);
  state_ = s;
  build_order();
}

}  // namespace reef
