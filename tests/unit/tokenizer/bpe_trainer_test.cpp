// Unit tests of the byte-level BPE trainer: merges on a corpus small enough to count by hand (ties
// go to the smaller pair of ids, as in HF), exact vocabulary size, special-token ids and roles,
// min_frequency and max_token_length, round trips through the saved tokenizer.json (unseen
// characters and invalid UTF-8 included), independence from the thread count, errors and the
// atomic save. The comparison with HF's own BpeTrainer is in tests/integration/tokenizer_cli_test.
#include "reef/tokenizer/bpe_trainer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "testing/testing.h"

namespace reef {
namespace {

using Merges = std::vector<std::pair<std::string, std::string>>;

BpeVocab train(const std::vector<std::string>& texts, BpeTrainerOptions opts) {
  BpeTrainer t(std::move(opts));
  t.add_texts(texts);
  return t.train();
}

// A few hundred documents of words over a small alphabet, with spaces, digits and punctuation.
std::vector<std::string> random_corpus(uint32_t seed, int n_docs, int n_letters = 6) {
  std::mt19937 rng(seed);
  std::vector<std::string> docs;
  for (int d = 0; d < n_docs; ++d) {
    std::string s;
    int n = 1 + static_cast<int>(rng() % 30);
    for (int w = 0; w < n; ++w) {
      if (w) s += rng() % 7 == 0 ? "\n" : " ";
      int len = 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < len; ++i) s += static_cast<char>('a' + rng() % n_letters);
      if (rng() % 9 == 0) s += std::to_string(rng() % 1000);
      if (rng() % 11 == 0) s += ". ";
    }
    docs.push_back(s);
  }
  return docs;
}

TEST(BpeTrainer, HandCountedMerges) {
  // "aaabdaaabac": (a,a) occurs 4 times, then (a,b) and (aa,a) tie at 2 and the smaller pair of
  // ids (a < aa) goes first, leaving (aa,ab) twice.
  BpeTrainerOptions o;
  o.vocab_size = 1 + 256 + 3;
  BpeVocab v = train({"aaabdaaabac"}, o);
  EXPECT_EQ(v.merges, (Merges{{"a", "a"}, {"a", "b"}, {"aa", "ab"}}));
  ASSERT_EQ(v.tokens.size(), 260u);
  EXPECT_EQ(v.tokens[0], "<|endoftext|>");
  EXPECT_EQ(v.tokens[1], "!");           // the alphabet follows, sorted by code point
  EXPECT_EQ(v.tokens[256], "\xC5\x83");  // U+0143, the stand-in for byte 0xAD, sorts last
  EXPECT_EQ(v.tokens[257], "aa");
  EXPECT_EQ(v.tokens[258], "ab");
  EXPECT_EQ(v.tokens[259], "aaab");
}

TEST(BpeTrainer, MergesStayInsidePreTokenizedWords) {
  // With spaces split off, the words are "ab" x3 and "cd" x2 (single spaces hold no pair).
  BpeTrainerOptions o;
  o.vocab_size = 1000;
  o.pattern = R"(\S+|\s+)";
  BpeVocab v = train({"ab ab ab cd cd"}, o);
  EXPECT_EQ(v.merges, (Merges{{"a", "b"}, {"c", "d"}}));
  EXPECT_EQ(v.pattern_name, "regex");
}

TEST(BpeTrainer, MinFrequencyStopsMerging) {
  std::vector<std::string> texts = {"ab ab ab cd cd"};
  BpeTrainerOptions o;
  o.vocab_size = 1000;
  o.min_frequency = 3;
  BpeVocab v = train(texts, o);
  EXPECT_EQ(v.merges, (Merges{{"a", "b"}}));
  EXPECT_EQ(v.tokens.size(), 258u);
  o.min_frequency = 2;
  v = train(texts, o);
  // Words "ab", " ab" x2, " cd" x2. After ab (3), the pairs (c,d), (Ġ,c) and (Ġ,ab) tie at 2;
  // letters have smaller ids than Ġ (U+0120), and ab (257) than cd (258).
  EXPECT_EQ(v.merges, (Merges{{"a", "b"}, {"c", "d"}, {"\xC4\xA0", "ab"}, {"\xC4\xA0", "cd"}}));
  o.min_frequency = 0;
  EXPECT_GE(train(texts, o).merges.size(), 4u);
}

TEST(BpeTrainer, VocabSizeIsExact) {
  auto docs = random_corpus(1, 400);
  for (int64_t n : {257, 258, 300, 700}) {
    BpeTrainerOptions o;
    o.vocab_size = n;
    BpeVocab v = train(docs, o);
    EXPECT_EQ(static_cast<int64_t>(v.tokens.size()), n);
    EXPECT_EQ(static_cast<int64_t>(v.merges.size()), n - 257);
  }
}

TEST(BpeTrainer, SpecialTokensComeFirstAndNameRoles) {
  testing::ScratchDir dir;
  BpeTrainerOptions o;
  o.vocab_size = 400;
  o.special_tokens = {"<s>", "</s>", "<pad>", "<s>"};  // the duplicate is dropped
  BpeVocab v = train(random_corpus(2, 200), o);
  ASSERT_EQ(v.tokens.size(), 400u);
  EXPECT_EQ(v.tokens[0], "<s>");
  EXPECT_EQ(v.tokens[1], "</s>");
  EXPECT_EQ(v.tokens[2], "<pad>");
  EXPECT_EQ(v.tokens[3], "!");
  save_bpe_tokenizer(v, dir / "tok");
  HfTokenizer tok(dir / "tok/tokenizer.json", dir / "tok/tokenizer_config.json");
  EXPECT_EQ(tok.vocab_size(), 400);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.pad_id(), 2);
  // Special text in a document stays ordinary bytes unless parsing is asked for.
  EXPECT_EQ(tok.encode("</s>", EncodeOptions{false, true}), std::vector<int32_t>{1});
  EXPECT_NE(tok.encode("</s>"), std::vector<int32_t>{1});
  auto doc = nlohmann::json::parse(read_file(dir / "tok/tokenizer.json"));
  ASSERT_EQ(doc["added_tokens"].size(), 3u);
  EXPECT_TRUE(doc["added_tokens"][1]["special"].get<bool>());
  EXPECT_EQ(doc["model"]["vocab"]["<pad>"], 2);

  o.special_tokens = {};
  v = train(random_corpus(2, 50), o);
  EXPECT_EQ(v.tokens[0], "!");
  save_bpe_tokenizer(v, dir / "none");
  HfTokenizer none(dir / "none/tokenizer.json", dir / "none/tokenizer_config.json");
  EXPECT_EQ(none.eos_id(), -1);
}

TEST(BpeTrainer, MaxTokenLength) {
  BpeTrainerOptions o;
  o.vocab_size = 2000;
  o.max_token_length = 4;  // HF semantics: merged tokens stay shorter than 4 bytes
  BpeVocab v = train(random_corpus(3, 300, 3), o);
  ASSERT_GT(v.merges.size(), 10u);
  for (size_t i = 257; i < v.tokens.size(); ++i) {
    size_t chars = 0;  // one character of the byte-level form per byte
    for (unsigned char c : v.tokens[i]) chars += (c & 0xC0) != 0x80;
    EXPECT_LT(chars, 4u) << v.tokens[i];
  }
}

TEST(BpeTrainer, RoundTripsAnyText) {
  testing::ScratchDir dir;
  std::vector<std::string> docs = random_corpus(4, 300);
  docs.push_back(
      "déjà vu — naïve café; Größe straße; привет мир; 你好世界; def f(x):\n    return x**2\n");
  for (const char* pattern : {"llama3", "gpt2", "qwen2", R"(\s+|\w+|[^\s\w]+)"}) {
    BpeTrainerOptions o;
    o.vocab_size = 600;
    o.pattern = pattern;
    BpeVocab v = train(docs, o);
    std::string out = dir / (std::string("tok") + std::to_string(v.merges.size()) + v.pattern_name);
    save_bpe_tokenizer(v, out);
    HfTokenizer tok(out + "/tokenizer.json", out + "/tokenizer_config.json");
    for (const std::string text :
         {std::string("abc dab cafe 123 4567."),
          std::string("déjà vu — naïve café 🤖🎉 👨‍👩‍👧"),
          std::string("  \t\n\n  x\r\n\u00a0\u3000y  "),
          std::string("日本語のテキスト، العربية, ελληνικά"), std::string("bad \xff\xfe utf8 \xc3"),
          std::string("<|endoftext|> is plain text here"), std::string()}) {
      std::vector<int32_t> ids = tok.encode(text);
      EXPECT_EQ(tok.decode(ids), text) << pattern;
      for (int32_t id : ids) EXPECT_NE(id, 0) << "special id produced for: " << text;
    }
    // Trained text compresses.
    std::string sample;
    for (int i = 0; i < 20; ++i) sample += docs[i] + "\n\n";
    EXPECT_LT(static_cast<double>(tok.encode(sample).size()),
              0.6 * static_cast<double>(sample.size()))
        << pattern;
  }
}

TEST(BpeTrainer, SameResultForAnyThreadCountAndOrder) {
  // Enough distinct words that the big merge steps run on several threads.
  std::vector<std::string> docs = random_corpus(5, 6000, 8);
  BpeTrainerOptions o;
  o.vocab_size = 1500;
  o.threads = 1;
  BpeVocab one = train(docs, o);
  o.threads = 4;
  BpeVocab four = train(docs, o);
  EXPECT_EQ(one.tokens, four.tokens);
  EXPECT_EQ(one.merges, four.merges);
  // Nor does the order of the documents matter.
  BpeTrainer t(o);
  for (size_t i = docs.size(); i-- > 0;) t.add_text(docs[i]);
  EXPECT_EQ(t.texts(), static_cast<int64_t>(docs.size()));
  BpeVocab again = t.train();
  EXPECT_EQ(again.merges, one.merges);
}

TEST(BpeTrainer, BadOptionsAreUsageErrors) {
  auto kind_of = [](BpeTrainerOptions o) {
    try {
      BpeTrainer t(std::move(o));
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::kRuntime;
  };
  BpeTrainerOptions o;
  o.vocab_size = 256;  // 256 bytes + 1 special needed
  EXPECT_EQ(kind_of(o), ErrorKind::kUsage);
  o.vocab_size = 1000;
  o.pattern = "([unclosed";
  EXPECT_EQ(kind_of(o), ErrorKind::kUsage);
  o.pattern = "gpt2";
  o.special_tokens = {""};
  EXPECT_EQ(kind_of(o), ErrorKind::kUsage);
  o.special_tokens = {};
  o.vocab_size = 256;  // no specials: the bytes alone fit
  BpeTrainer t(o);
  EXPECT_EQ(t.initial_vocab_size(), 256);
  EXPECT_EQ(t.train().tokens.size(), 256u);
  EXPECT_THROW(t.train(), Error);
}

TEST(BpeTrainer, SaveIsAtomic) {
  testing::ScratchDir dir;
  BpeTrainerOptions o;
  o.vocab_size = 300;
  BpeVocab v = train(random_corpus(6, 50), o);
  save_bpe_tokenizer(v, dir / "a/b/tok");  // missing parents are made
  EXPECT_TRUE(path_exists(dir / "a/b/tok/tokenizer.json"));
  EXPECT_TRUE(path_exists(dir / "a/b/tok/special_tokens_map.json"));
  save_bpe_tokenizer(v, dir / "a/b/tok");  // an existing folder has its files replaced
  EXPECT_EQ(list_dir(dir / "a/b/tok").size(), 3u);
  EXPECT_EQ(list_dir(dir / "a/b").size(), 1u);
  write_file_atomic(dir / "file", "x");
  EXPECT_THROW(save_bpe_tokenizer(v, dir / "file"), Error);
  EXPECT_THROW(save_bpe_tokenizer(v, dir / "file/tok"), Error);
  EXPECT_EQ(list_dir(dir.path()).size(), 2u);  // a, file: nothing half-written beside them
}

TEST(BpeTrainer, PatternNames) {
  std::string name;
  EXPECT_EQ(bpe_pattern_regex("cl100k", &name), bpe_pattern_regex("llama3"));
  EXPECT_EQ(name, "llama3");
  bpe_pattern_regex("qwen2", &name);
  EXPECT_EQ(name, "qwen2");
  EXPECT_EQ(bpe_pattern_regex("\\w+", &name), "\\w+");
  EXPECT_EQ(name, "regex");
}

}  // namespace
}  // namespace reef
