// Tests for the byte tokenizer, including that HF `tokenizers` loads the tokenizer.json it
// writes and encodes/decodes exactly as Reef does.
#include <gtest/gtest.h>

#include <random>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/tokenizer/tokenizer.h"
#include "testing/testing.h"

namespace reef {
namespace {

TEST(ByteTokenizer, RoundTripsArbitraryBytes) {
  ByteTokenizer tok;
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xFF);
    auto ids = tok.encode(s);
    ASSERT_EQ(ids.size(), s.size());
    EXPECT_EQ(tok.decode(ids), s);
  }
}

TEST(ByteTokenizer, SpecialsAreDroppedOrShown) {
  ByteTokenizer tok;
  std::vector<int32_t> ids = {'h', 'i', ByteTokenizer::kEndOfText, 'x'};
  EXPECT_EQ(tok.decode(ids), "hix");
  EXPECT_EQ(tok.decode(ids, true), "hi<|endoftext|>x");
  EXPECT_EQ(tok.vocab_size(), 258);
}

TEST(ByteTokenizer, ByteToUnicodeMatchesGpt2Table) {
  EXPECT_EQ(byte_to_unicode('A'), "A");
  EXPECT_EQ(byte_to_unicode(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(byte_to_unicode('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(byte_to_unicode(0), "\xC4\x80");     // U+0100
}

TEST(ByteTokenizer, UnknownNameIsUsageError) {
  try {
    make_tokenizer("wordpiece");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("wordpiece"), std::string::npos);
  }
}

TEST(ByteTokenizer, HuggingFaceTokenizersAgree) {
  testing::ScratchDir dir;
  ByteTokenizer tok;
  tok.save(dir.path());
  std::vector<std::string> texts = {"Hello, world!", "  two  spaces\nand\ttabs ",
                                    "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC",
                                    "emoji \xF0\x9F\x98\x80!", "<|endoftext is not special here"};
  std::string lines;
  for (const auto& t : texts) {
    auto ids = tok.encode(t);
    for (size_t i = 0; i < ids.size(); ++i) lines += (i ? " " : "") + std::to_string(ids[i]);
    lines += "\n";
  }
  std::string text_file = dir / "texts.bin";
  std::string joined;
  for (const auto& t : texts) joined += t + '\x1e';
  write_file_atomic(text_file, joined);
  write_file_atomic(dir / "ids.txt", lines);
  std::string script =
      "import sys\n"
      "from tokenizers import Tokenizer\n"
      "d = sys.argv[1]\n"
      "tok = Tokenizer.from_file(d + '/tokenizer.json')\n"
      "texts = open(d + '/texts.bin', 'rb').read().decode('utf-8').split('\\x1e')[:-1]\n"
      "want = [list(map(int, l.split())) for l in open(d + '/ids.txt').read().splitlines()]\n"
      "for t, w in zip(texts, want):\n"
      "    got = tok.encode(t, add_special_tokens=False).ids\n"
      "    assert got == w, (t, got, w)\n"
      "    assert tok.decode(got) == t, (t, tok.decode(got))\n"
      "print('ok', len(texts))\n";
  write_file_atomic(dir / "check.py", script);
  auto r = testing::run_python({dir / "check.py", dir.path()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ok 5"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace reef
