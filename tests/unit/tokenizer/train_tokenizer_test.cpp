// The `reef tokenizer train` driver without the CLI: documents from a reader callback, the folder
// written and reloadable, the result's counts, and the usage errors raised before any work.
#include "reef/tokenizer/train_tokenizer.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "testing/testing.h"

namespace reef {
namespace {

TrainTokenizerOptions tiny(const testing::ScratchDir& dir) {
  write_file_atomic(dir / "a.txt", "hello hello world\n\nhello there world\n");
  TrainTokenizerOptions o;
  o.inputs = {dir / "a.txt"};
  o.output = dir / "tok";
  o.progress = "none";
  o.bpe.vocab_size = 262;
  o.bpe.min_frequency = 1;
  o.read_documents = [](const std::string& path, const std::string& format,
                        const std::string& key) {
    EXPECT_EQ(format, "auto");
    EXPECT_EQ(key, "text");
    EXPECT_TRUE(path_exists(path));
    return std::vector<std::string>{"hello hello world", "hello there world"};
  };
  return o;
}

TEST(TrainTokenizer, TrainsWritesAndReports) {
  testing::ScratchDir dir;
  TrainTokenizerResult r = train_tokenizer(tiny(dir));
  EXPECT_EQ(r.documents, 2);
  EXPECT_EQ(r.bytes, 34);
  EXPECT_EQ(r.vocab_size, 262);
  EXPECT_EQ(r.special_tokens, 1);
  EXPECT_EQ(r.merges, 262 - 257);
  EXPECT_EQ(r.tokenizer_json, dir / "tok/tokenizer.json");
  HfTokenizer tok(r.tokenizer_json, dir / "tok/tokenizer_config.json");
  EXPECT_EQ(tok.vocab_size(), 262);
}

TEST(TrainTokenizer, BadInputsAreUsageErrorsBeforeAnyWork) {
  testing::ScratchDir dir;
  auto message = [&](TrainTokenizerOptions o) {
    try {
      train_tokenizer(o);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUsage);
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  TrainTokenizerOptions o = tiny(dir);
  o.inputs = {dir / "missing.txt"};
  EXPECT_EQ(message(o), "--input " + (dir / "missing.txt") + ": file not found");
  o = tiny(dir);
  o.format = "csv";
  EXPECT_EQ(message(o), "--format csv: expected auto, text or jsonl");
  o = tiny(dir);
  o.output = dir / "a.txt";
  EXPECT_EQ(message(o), "--output " + (dir / "a.txt") + ": exists and is not a directory");
  o = tiny(dir);
  o.read_documents = [](const std::string&, const std::string&, const std::string&) {
    return std::vector<std::string>{};
  };
  EXPECT_EQ(message(o), "--input: no documents found in 1 file(s)");
  EXPECT_FALSE(path_exists(dir / "tok"));
}

}  // namespace
}  // namespace reef
