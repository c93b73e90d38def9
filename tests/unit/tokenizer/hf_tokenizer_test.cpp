// Reference tests for HfTokenizer: tokenizers built and saved by HF `tokenizers` inside the test
// (hf_reference.py, nothing downloaded) must encode and decode a seeded multilingual corpus
// exactly as `tokenizers` does; plus round-trip properties and load errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "reef/tokenizer/regex.h"
#include "reef/tokenizer/sentencepiece_tokenizer.h"
#include "reef/tokenizer/tiktoken_tokenizer.h"
#include "testing/testing.h"

namespace reef {
namespace {

using nlohmann::json;
constexpr int kDocs = 3000;

// Random valid UTF-8 across the whole code space (no surrogates).
std::string random_utf8(std::mt19937& rng, size_t n_chars) {
  std::string s;
  for (size_t i = 0; i < n_chars; ++i) {
    uint32_t cp;
    switch (rng() % 4) {
      case 0: cp = rng() % 0x80; break;
      case 1: cp = 0x80 + rng() % 0x780; break;
      case 2: cp = 0x800 + rng() % 0xF800; break;
      default: cp = 0x10000 + rng() % 0x100000; break;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x20;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

class HfReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir();
    auto r = testing::run_python({testing::source_dir() + "/tests/unit/tokenizer/hf_reference.py",
                                  dir_->path(), std::to_string(kDocs)});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string dir(const std::string& name) { return *dir_ / name; }

  static std::unique_ptr<HfTokenizer> load(const std::string& name) {
    auto tok = load_tokenizer(dir(name));
    auto* hf = dynamic_cast<HfTokenizer*>(tok.get());
    EXPECT_NE(hf, nullptr);
    tok.release();
    return std::unique_ptr<HfTokenizer>(hf);
  }

  // Compares every reference record; returns the number of documents compared.
  static int compare_all(const std::string& name) {
    std::shared_ptr<HfTokenizer> tok = load(name);
    return compare_all(name, *tok, [&](const std::string& t) { return tok->encode(t, {true, true}); });
  }
  // `encode_full` is the encoding with specials parsed and added ("full" in the reference).
  template <typename EncodeFull>
  static int compare_all(const std::string& name, const Tokenizer& ref_tok, EncodeFull encode_full) {
    const Tokenizer* tok = &ref_tok;
    std::istringstream lines(read_file(dir(name) + "/reference.jsonl"));
    std::string line;
    int n = 0, bad = 0;
    while (std::getline(lines, line)) {
      json rec = json::parse(line);
      std::string text = rec["text"];
      auto plain = tok->encode(text);
      auto full = encode_full(text);
      bool ok = plain == rec["plain"].get<std::vector<int32_t>>() &&
                full == rec["full"].get<std::vector<int32_t>>() &&
                tok->decode(plain) == rec["decode_plain"].get<std::string>() &&
                tok->decode(full) == rec["decode_full_skip"].get<std::string>() &&
                tok->decode(full, true) == rec["decode_full_keep"].get<std::string>();
      if (!ok && ++bad <= 3) {
        ADD_FAILURE() << name << " doc " << n << " differs: " << json(text).dump()
                      << "\n ours plain: " << json(plain).dump() << "\n HF plain:   "
                      << rec["plain"].dump() << "\n ours full: " << json(full).dump()
                      << "\n HF full:   " << rec["full"].dump();
      }
      ++n;
    }
    EXPECT_EQ(bad, 0) << name << ": " << bad << " of " << n << " documents differ";
    return n;
  }
  static testing::ScratchDir* dir_;
};
testing::ScratchDir* HfReference::dir_ = nullptr;

TEST_F(HfReference, Gpt2StyleMatchesTokenizers) { EXPECT_EQ(compare_all("gpt2"), kDocs); }

TEST_F(HfReference, Llama3StyleMatchesTokenizers) { EXPECT_EQ(compare_all("llama3"), kDocs); }

TEST_F(HfReference, SplitBehaviorsMatchTokenizers) {
  int n = 0;
  for (const char* b : {"removed", "isolated", "merged_with_previous", "merged_with_next",
                        "contiguous"}) {
    n += compare_all(std::string("split_") + b);
    n += compare_all(std::string("split_") + b + "_inverted");
  }
  n += compare_all("digits_individual");
  n += compare_all("digits_runs");
  EXPECT_EQ(n, 12 * (kDocs / 10));
}

TEST_F(HfReference, TiktokenCl100kAndO200kRegexesMatchTiktoken) {
  for (const char* name : {"tiktoken_cl100k", "tiktoken_o200k"}) {
    TiktokenSpec spec = std::string(name) == "tiktoken_cl100k" ? cl100k_spec() : o200k_spec();
    auto ranks = read_file(dir(name) + "/ranks.tiktoken");
    int32_t n_ranks = static_cast<int32_t>(std::count(ranks.begin(), ranks.end(), '\n'));
    spec.special_tokens = {{"<|endoftext|>", n_ranks}, {"<|endofprompt|>", n_ranks + 1}};
    TiktokenTokenizer tok(dir(name) + "/ranks.tiktoken", spec);
    EXPECT_EQ(tok.vocab_size(), n_ranks + 2);
    EXPECT_EQ(tok.eos_id(), n_ranks);
    EXPECT_EQ(compare_all(name, tok, [&](const std::string& t) { return tok.encode(t, true); }),
              kDocs);
    // Round trip through save/load_tokenizer, and arbitrary bytes.
    testing::ScratchDir out;
    tok.save(out.path());
    auto again = load_tokenizer(out.path());
    EXPECT_EQ(again->name(), "tiktoken");
    std::mt19937 rng(5);
    for (int trial = 0; trial < 500; ++trial) {
      std::string s(rng() % 60, '\0');
      for (auto& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() & 0xFF : "ab \n'1"[rng() % 6]);
      ASSERT_EQ(again->decode(again->encode(s)), s);
      ASSERT_EQ(again->encode(s), tok.encode(s));
    }
  }
}

TEST_F(HfReference, SentencePieceMatchesSentencePiece) {
  for (const char* name : {"sp_bpe", "sp_unigram"}) {
    auto tok = load_tokenizer(dir(name) + "/tokenizer.model");
    ASSERT_EQ(tok->name(), "sentencepiece");
    EXPECT_EQ(tok->bos_id(), 1);
    EXPECT_EQ(tok->eos_id(), 2);
    EXPECT_EQ(tok->pad_id(), 3);
    auto full = [&](const std::string& t) {
      auto ids = tok->encode(t);
      ids.insert(ids.begin(), tok->bos_id());
      ids.push_back(tok->eos_id());
      return ids;
    };
    EXPECT_EQ(compare_all(name, *tok, full), kDocs);
  }
  // Byte fallback without normalization round-trips any valid UTF-8.
  auto tok = load_tokenizer(dir("sp_bpe"));
  testing::ScratchDir out;
  tok->save(out.path());
  auto again = load_tokenizer(out.path());
  std::mt19937 rng(3);
  for (int trial = 0; trial < 1000; ++trial) {
    std::string s = random_utf8(rng, rng() % 60);
    ASSERT_EQ(again->decode(again->encode(s)), s) << json(s).dump();
  }
}

TEST_F(HfReference, SpecialTokensAndChatTemplateFromConfig) {
  auto llama = load("llama3");
  EXPECT_EQ(llama->bos_id(), llama->token_to_id("<|begin_of_text|>"));
  EXPECT_EQ(llama->eos_id(), llama->token_to_id("<|eot_id|>"));
  EXPECT_EQ(llama->pad_id(), llama->eos_id());
  EXPECT_GE(llama->bos_id(), 0);
  EXPECT_EQ(llama->chat_template(), "{% for m in messages %}{{ m['content'] }}{% endfor %}");
  EXPECT_EQ(llama->vocab_size(), 2503);  // 2500 trained + 3 added
  // BOS only with add_special_tokens; special text stays text unless parse_special.
  auto ids = llama->encode("hi <|eot_id|>", {true, true});
  EXPECT_EQ(ids.front(), llama->bos_id());
  EXPECT_EQ(ids.back(), llama->eos_id());
  auto plain = llama->encode("hi <|eot_id|>");
  EXPECT_NE(plain.front(), llama->bos_id());
  EXPECT_EQ(std::count(plain.begin(), plain.end(), llama->eos_id()), 0);
  auto gpt2 = load("gpt2");
  EXPECT_EQ(gpt2->bos_id(), gpt2->token_to_id("<|endoftext|>"));
  EXPECT_EQ(gpt2->id_to_token(gpt2->token_to_id("<|endoftext|>")), "<|endoftext|>");
}

TEST_F(HfReference, RoundTripsRandomUtf8AndArbitraryBytes) {
  std::mt19937 rng(99);
  for (const char* name : {"gpt2", "llama3"}) {
    auto tok = load(name);
    for (int trial = 0; trial < 2000; ++trial) {
      std::string s = random_utf8(rng, rng() % 80);
      ASSERT_EQ(tok->decode(tok->encode(s)), s) << name << " " << json(s).dump();
    }
    for (int trial = 0; trial < 2000; ++trial) {
      std::string s(rng() % 80, '\0');
      for (auto& c : s) c = static_cast<char>(rng() % 5 == 0 ? rng() & 0xFF : "ab <\n'1"[rng() % 7]);
      ASSERT_EQ(tok->decode(tok->encode(s)), s) << name << " trial " << trial;
    }
  }
}

TEST_F(HfReference, SaveWritesLoadableCopy) {
  auto tok = load("llama3");
  testing::ScratchDir out;
  tok->save(out.path());
  auto again = load_tokenizer(out.path());
  std::string text = "Größe <tool> 你好 👍🏽  x\n";
  EXPECT_EQ(again->encode(text), tok->encode(text));
  EXPECT_EQ(again->bos_id(), tok->bos_id());
}

TEST_F(HfReference, UnsupportedComponentsNameFileAndType) {
  json doc = json::parse(read_file(dir("gpt2") + "/tokenizer.json"));
  auto expect_error = [&](const json& d, const std::string& what) {
    testing::ScratchDir bad;
    write_file_atomic(bad / "tokenizer.json", d.dump());
    try {
      load_tokenizer(bad.path());
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(bad / "tokenizer.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
  };
  json d = doc;
  d["normalizer"] = {{"type", "NFKC"}};
  expect_error(d, "NFKC");
  d = doc;
  d["model"]["type"] = "WordPiece";
  expect_error(d, "WordPiece");
  d = doc;
  d["pre_tokenizer"] = {{"type", "Metaspace"}};
  expect_error(d, "Metaspace");
  d = doc;
  d["post_processor"] = {{"type", "Fancy"}};
  expect_error(d, "Fancy");
}

TEST(LoadTokenizer, RecognisesReefByteTokenizer) {
  testing::ScratchDir dir;
  ByteTokenizer().save(dir.path());
  auto tok = load_tokenizer(dir.path());
  EXPECT_EQ(tok->name(), "byte");
  EXPECT_EQ(make_tokenizer(dir.path())->name(), "byte");
  EXPECT_THROW(load_tokenizer(dir / "missing"), Error);
}

TEST(Regex, WidensWhitespaceLikeOniguruma) {
  EXPECT_EQ(widen_whitespace_classes(R"(\s+(?!\S))"), R"([\s\x{85}]+(?![^\s\x{85}]))");
  EXPECT_EQ(widen_whitespace_classes(R"([^\s\p{L}])"), R"([^\s\x{85}\p{L}])");
  Regex re(R"(\s+)", "test");
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all("a\xC2\x85 b", m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], std::make_pair(size_t{1}, size_t{4}));
  // Capturing groups beyond the whole match do not disturb it.
  Regex groups("(a)(b)|(c)", "test");
  m.clear();
  groups.find_all("abxc", m);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], std::make_pair(size_t{0}, size_t{2}));
  EXPECT_EQ(m[1], std::make_pair(size_t{3}, size_t{4}));
}

TEST(Regex, BadPatternNamesContext) {
  try {
    Regex re("(unclosed", "my.json: Split");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my.json: Split"), std::string::npos);
  }
}

}  // namespace
}  // namespace reef
