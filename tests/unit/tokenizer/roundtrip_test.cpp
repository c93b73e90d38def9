// Property test: decode(encode(x)) == x for every tokenizer in tests/fuzz/roundtrip_check.h, on
// thousands of seeded random strings built to hit the hard cases (scalar values from every
// plane, combining marks and ZWJ emoji sequences, whitespace runs, long single-character words
// past the BPE cache limit, special-token text, and invalid UTF-8), plus each of the fuzz
// corpus seeds. The libFuzzer target checks the same property on mutated inputs.
#include <gtest/gtest.h>

#include <random>

#include "../../fuzz/roundtrip_check.h"
#include "reef/tokenizer/regex.h"
#include "testing/testing.h"

namespace reef {
namespace {

void append_utf8(uint32_t cp, std::string* s) {
  if (cp < 0x80) {
    s->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string random_text(std::mt19937_64& rng, bool allow_invalid) {
  const char* fixed[] = {" ",
                         "  ",
                         "\t",
                         "\n",
                         "\r\n",
                         "\n\n\n",
                         "        ",
                         "'s",
                         "'LL",
                         "<|endoftext|>",
                         "e\xCC\x81",
                         "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
                         "\xE2\x80\xA8",
                         "\xC2\xA0",
                         "\xE3\x80\x80",
                         "123456789",
                         "x = y + 1;",
                         "the",
                         "Ωμέγα"};
  std::string s;
  const int parts = 1 + static_cast<int>(rng() % 24);
  for (int p = 0; p < parts; ++p) {
    switch (rng() % 8) {
      case 0:
      case 1:
        s += fixed[rng() % (sizeof(fixed) / sizeof(fixed[0]))];
        break;
      case 2:  // ASCII
        for (int k = 0, n = 1 + rng() % 12; k < n; ++k)
          s.push_back(static_cast<char>(0x20 + rng() % 95));
        break;
      case 3:  // any scalar value, surrogates excluded
        for (int k = 0, n = 1 + rng() % 6; k < n; ++k) {
          uint32_t cp = static_cast<uint32_t>(rng() % 0x110000);
          if (cp >= 0xD800 && cp < 0xE000) cp -= 0x800;
          append_utf8(cp, &s);
        }
        break;
      case 4:  // BMP letters with combining marks
        for (int k = 0, n = 1 + rng() % 6; k < n; ++k) {
          append_utf8(0x41 + static_cast<uint32_t>(rng() % 0x2000), &s);
          if (rng() % 2) append_utf8(0x300 + static_cast<uint32_t>(rng() % 0x70), &s);
        }
        break;
      case 5:  // a long run of one character (a word longer than the BPE cache keeps)
        for (int k = 0, n = 100 + rng() % 400; k < n; ++k) s += (rng() % 2 ? "a" : "");
        s += std::string(200 + rng() % 200, "ab-_.é"[rng() % 5]);
        break;
      case 6:  // emoji and CJK
        for (int k = 0, n = 1 + rng() % 5; k < n; ++k)
          append_utf8(rng() % 2 ? 0x1F300 + static_cast<uint32_t>(rng() % 0x300)
                                : 0x4E00 + static_cast<uint32_t>(rng() % 0x5000),
                      &s);
        break;
      case 7:  // raw bytes: invalid UTF-8 where allowed
        if (allow_invalid)
          for (int k = 0, n = 1 + rng() % 4; k < n; ++k)
            s.push_back(static_cast<char>(0x80 + rng() % 0x80));
        break;
    }
  }
  return s;
}

TEST(RoundTrip, DecodeOfEncodeIsIdentityOnRandomText) {
  testing::ScratchDir dir;
  const auto toks = roundtrip::make_tokenizers(dir.path());
  ASSERT_EQ(toks.all.size(), 5u);
  std::mt19937_64 rng(20261122);
  int invalid = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string text = random_text(rng, i % 3 == 0);
    invalid += valid_utf8_prefix(text) != text.size();
    const std::string err = roundtrip::check(toks, text);
    ASSERT_EQ(err, "") << "case " << i;
  }
  EXPECT_GT(invalid, 100);  // the invalid-UTF-8 branch really ran
  // Every byte value alone, and the empty string.
  for (int b = 0; b < 256; ++b)
    ASSERT_EQ(roundtrip::check(toks, std::string(1, static_cast<char>(b))), "") << b;
  EXPECT_EQ(roundtrip::check(toks, ""), "");
  // The fuzzer's seed corpus (and any crash reproducer added to it).
  const std::string corpus = testing::source_dir() + "/tests/fuzz/corpus";
  int seeds = 0;
  for (const auto& name : list_dir(corpus)) {
    EXPECT_EQ(roundtrip::check(toks, read_file(join_path(corpus, name))), "") << name;
    ++seeds;
  }
  EXPECT_GE(seeds, 4);
}

TEST(RoundTrip, TheTrainedTokenizersReallyMerge) {
  // Guards the property test against passing vacuously on byte-per-token tokenizers.
  testing::ScratchDir dir;
  const auto toks = roundtrip::make_tokenizers(dir.path());
  const std::string text = "the quick brown fox jumps over the lazy dog";
  for (const auto& [name, tok] : toks.all) {
    if (name == "byte") continue;
    EXPECT_LT(tok->encode(text).size(), text.size() / 2) << name;
  }
}

}  // namespace
}  // namespace reef
