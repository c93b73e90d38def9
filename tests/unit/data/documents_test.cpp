// Tests for data/documents.h: reading, splitting, tokenizing and the resumable window sampler.
#include "reef/data/documents.h"

#include <gtest/gtest.h>

#include <set>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/data/fortunes.h"
#include "testing/testing.h"

namespace reef {
namespace {

TEST(Documents, TextSplitsOnBlankLines) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "a.txt", "first doc\nline two\n\n\n  \nsecond\n\nthird");
  auto docs = read_documents(dir / "a.txt", "auto", "text");
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0], "first doc\nline two");
  EXPECT_EQ(docs[2], "third");
}

TEST(Documents, JsonlReadsKeyAndReportsBadLine) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "a.jsonl", "{\"text\": \"x\"}\n\n{\"body\": \"y\", \"text\": \"z\"}\n");
  EXPECT_EQ(read_documents(dir / "a.jsonl", "auto", "text"), (std::vector<std::string>{"x", "z"}));
  write_file_atomic(dir / "b.jsonl", "{\"text\": \"x\"}\n{\"text\": oops}\n");
  try {
    read_documents(dir / "b.jsonl", "auto", "text");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.jsonl:2"), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), 2);
  }
  write_file_atomic(dir / "c.jsonl", "{\"body\": \"x\"}\n");
  EXPECT_THROW(read_documents(dir / "c.jsonl", "auto", "text"), Error);
  EXPECT_THROW(read_documents(dir / "missing.jsonl", "auto", "text"), Error);
}

TEST(Documents, SplitIsDeterministicAndOrderIndependent) {
  std::vector<std::string> docs;
  for (int i = 0; i < 2000; ++i) docs.push_back("doc " + std::to_string(i));
  std::vector<std::string> t1, v1, t2, v2;
  split_documents(docs, 0.1, &t1, &v1);
  std::reverse(docs.begin(), docs.end());
  split_documents(docs, 0.1, &t2, &v2);
  EXPECT_EQ(std::set<std::string>(v1.begin(), v1.end()),
            std::set<std::string>(v2.begin(), v2.end()));
  EXPECT_GT(v1.size(), 140u);
  EXPECT_LT(v1.size(), 260u);
  EXPECT_EQ(t1.size() + v1.size(), 2000u);
}

TEST(Documents, TokenizeAppendsEos) {
  ByteTokenizer tok;
  auto s = tokenize_documents({"ab", "c"}, tok);
  EXPECT_EQ(s.tokens, (std::vector<int32_t>{'a', 'b', 256, 'c', 256}));
  EXPECT_EQ(s.n_documents, 2);
}

std::shared_ptr<const TokenStream> counting_stream(int32_t n) {
  auto s = std::make_shared<TokenStream>();
  for (int32_t t = 0; t < n; ++t) s->tokens.push_back(t);
  return s;
}

TEST(TokenWindows, VisitsEveryWindowOncePerEpochReshuffledPerEpoch) {
  TokenWindows a(counting_stream(1001), 10, 42);
  ASSERT_EQ(a.num_windows(), 100);
  std::set<int64_t> seen;
  std::vector<int64_t> e1, e2, other;
  TokenWindows d(counting_stream(1001), 10, 43);
  for (int i = 0; i < 100; ++i) {
    seen.insert(a.window_start(i));
    e1.push_back(a.window_start(i));
    e2.push_back(a.window_start(100 + i));
    other.push_back(d.window_start(i));
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(*seen.rbegin(), 990);
  EXPECT_NE(e1, e2);
  EXPECT_NE(e1, other);
  // A sample holds seq_len+1 consecutive tokens from its start.
  std::vector<int32_t> s;
  a.sample(7, &s);
  ASSERT_EQ(s.size(), 11u);
  for (int t = 0; t < 11; ++t) EXPECT_EQ(s[t], a.window_start(7) + t);
}

TEST(TokenWindows, SampleIDependsOnlyOnIAndTheFingerprintOnContent) {
  // Reading samples out of order (as a resumed run does) gives the same windows.
  TokenWindows a(counting_stream(1001), 10, 42), b(counting_stream(1001), 10, 42);
  std::vector<int64_t> forward, backward(350);
  for (int64_t i = 0; i < 350; ++i) forward.push_back(a.window_start(i));
  for (int64_t i = 349; i >= 0; --i) backward[i] = b.window_start(i);
  EXPECT_EQ(forward, backward);
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  EXPECT_NE(a.fingerprint(), TokenWindows(counting_stream(1002), 10, 42).fingerprint());
  EXPECT_NE(a.fingerprint(), TokenWindows(counting_stream(1001), 10, 41).fingerprint());
  EXPECT_NE(a.fingerprint(), TokenWindows(counting_stream(1001), 11, 42).fingerprint());
  // Without shuffling, one epoch in stream order (validation).
  TokenWindows v(counting_stream(1001), 10, 42, false, 1);
  EXPECT_EQ(v.num_samples(), 100);
  EXPECT_EQ(v.window_start(3), 30);
  EXPECT_THROW(v.window_start(100), Error);
}

TEST(TokenWindows, TooLittleDataIsUsageError) {
  EXPECT_THROW(TokenWindows(counting_stream(5), 10, 1), Error);
}

TEST(Fortunes, BuildsCorpusFromPercentSeparatedFiles) {
  testing::ScratchDir dir;
  make_dirs(dir / "src");
  std::string body;
  for (int i = 0; i < 300; ++i) body += "quote number " + std::to_string(i) + "\n  -- someone\n%\n";
  body += "quote number 0\n  -- someone\n%\n";  // a duplicate
  write_file_atomic(dir / "src/misc", body);
  write_file_atomic(dir / "src/misc.dat", "binary index, skipped");
  auto c = build_fortunes_corpus(dir / "src", dir / "out", 0.1);
  EXPECT_EQ(c.n_train + c.n_valid, 300);
  EXPECT_EQ(c.n_duplicates, 1);
  EXPECT_GT(c.n_valid, 10);
  auto train = read_documents(c.train_path, "auto", "text");
  auto valid = read_documents(c.valid_path, "auto", "text");
  EXPECT_EQ(static_cast<int64_t>(train.size()), c.n_train);
  std::set<std::string> t(train.begin(), train.end());
  for (const auto& v : valid) EXPECT_EQ(t.count(v), 0u);
  EXPECT_EQ(train[0].find("quote number"), 0u);
  EXPECT_EQ(train[0].back(), 'e');  // trailing newline trimmed
}

}  // namespace
}  // namespace reef
