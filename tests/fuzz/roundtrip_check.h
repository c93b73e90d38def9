// The round-trip property decode(encode(x)) == x, shared by the property test
// (tests/unit/tokenizer/roundtrip_test.cpp) and the libFuzzer target
// (tests/fuzz/tokenizer_roundtrip_fuzz.cpp): small byte-level BPEs are trained here with Reef's
// own trainer under each pre-tokenizer pattern it offers, saved as tokenizer.json and loaded
// back through load_tokenizer, one of them also as a tiktoken rank file; with the byte
// tokenizer they must give back every byte string exactly (valid UTF-8 or not).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reef/base/files.h"
#include "reef/tokenizer/bpe_trainer.h"
#include "reef/tokenizer/decoder.h"
#include "reef/tokenizer/tiktoken_tokenizer.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef::roundtrip {

// Training text that gives the merges something to chew on: words, digits, code, spaces,
// several scripts and emoji.
inline std::vector<std::string> training_corpus() {
  const char* pieces[] = {"the quick brown fox ",
                          "jumps over the lazy dog. ",
                          "It's 2026, isn't it? ",
                          "def f(x):\n    return x ** 2\n",
                          "for (int i = 0; i < n; ++i) { a[i] = i; }\n",
                          "déjà vu, naïve café ",
                          "привет, мир ",
                          "你好，世界。",
                          "こんにちは ",
                          "안녕하세요 ",
                          "😀👍🏽 👨‍👩‍👧 ",
                          "   \t\t\n\n  ",
                          "12345 67.89 ",
                          "<|endoftext|>"};
  std::vector<std::string> out;
  for (int i = 0; i < 400; ++i) {
    std::string doc;
    for (int k = 0; k < 12; ++k) doc += pieces[(i * 7 + k * 5) % 14];
    out.push_back(doc);
  }
  return out;
}

// Ranks in id order for the tokenizer's byte strings (ids are merge order after the 256 byte
// symbols, which is what tiktoken's rank-ordered merging needs).
inline void write_rank_file(const BpeVocab& v, const std::string& path) {
  static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto b64 = [&](const std::string& s) {
    std::string o;
    size_t i = 0;
    for (; i + 2 < s.size(); i += 3) {
      uint32_t n = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
      for (int k = 3; k >= 0; --k) o.push_back(kB64[(n >> (6 * k)) & 63]);
    }
    if (i + 1 == s.size()) {
      uint32_t n = uint8_t(s[i]) << 16;
      o += {kB64[n >> 18], kB64[(n >> 12) & 63], '=', '='};
    } else if (i + 2 == s.size()) {
      uint32_t n = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
      o += {kB64[n >> 18], kB64[(n >> 12) & 63], kB64[(n >> 6) & 63], '='};
    }
    return o;
  };
  std::string text, raw;
  int rank = 0;
  for (const auto& tok : v.tokens) {
    bool special = false;
    for (const auto& s : v.special_tokens) special |= s == tok;
    if (special || !unmap_byte_level(tok, &raw)) continue;
    text += b64(raw) + " " + std::to_string(rank++) + "\n";
  }
  write_file_atomic(path, text);
}

struct Tokenizers {
  std::vector<std::pair<std::string, std::unique_ptr<Tokenizer>>> all;
};

// Trains and loads the tokenizers under test into `dir` (which must exist).
inline Tokenizers make_tokenizers(const std::string& dir) {
  Tokenizers t;
  t.all.emplace_back("byte", make_tokenizer("byte"));
  const auto corpus = training_corpus();
  for (const char* pattern : {"gpt2", "llama3", "qwen2"}) {
    BpeTrainerOptions o;
    o.vocab_size = 600;
    o.pattern = pattern;
    o.threads = 1;
    BpeTrainer trainer(o);
    trainer.add_texts(corpus);
    BpeVocab v = trainer.train();
    const std::string out = join_path(dir, pattern);
    save_bpe_tokenizer(v, out);
    t.all.emplace_back(std::string("hf-") + pattern, load_tokenizer(out));
    if (std::string(pattern) == "llama3") {
      // cl100k's regex is Llama 3's up to possessive quantifiers: the same splits.
      const std::string ranks = join_path(dir, "ranks.tiktoken");
      write_rank_file(v, ranks);
      t.all.emplace_back("tiktoken-cl100k", load_tokenizer(ranks));
    }
  }
  return t;
}

// "" when every tokenizer gives `text` back exactly; otherwise what went wrong.
inline std::string check(const Tokenizers& t, std::string_view text) {
  for (const auto& [name, tok] : t.all) {
    const auto ids = tok->encode(text);
    const std::string back = tok->decode(ids);
    if (back != text)
      return name + ": decode(encode(x)) != x for x of " + std::to_string(text.size()) +
             " bytes (got " + std::to_string(back.size()) + " bytes from " +
             std::to_string(ids.size()) + " ids)";
    for (int32_t id : ids)
      if (id < 0 || id >= tok->vocab_size())
        return name + ": id " + std::to_string(id) + " out of range";
  }
  return "";
}

}  // namespace reef::roundtrip
