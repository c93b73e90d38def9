// End-to-end tests of `reef data prepare` and `reef data inspect` through the real binary:
// exit codes, the summary and inspect output, and that bad input exits 2 leaving no dataset.
#include <gtest/gtest.h>

#include <string>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

using testing::run_reef;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(DataCli, PrepareThenInspect) {
  testing::ScratchDir dir;
  std::string jsonl;
  for (int i = 0; i < 120; ++i)
    jsonl += "{\"body\": \"document number " + std::to_string(i) + " déjà vu\", \"id\": 1}\n";
  write_file_atomic(dir / "a.jsonl", jsonl);
  write_file_atomic(dir / "b.txt", "a text document\nof two lines\n\nanother one\n");
  auto r = run_reef({"data", "prepare", "--input", dir / "a.jsonl", dir / "b.txt", "--tokenizer",
                     "byte", "--output", dir / "out/ds", "--text-key", "body", "--append-eod",
                     "--workers", "3", "--progress", "off"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "prepared 122 documents")) << r.output;
  EXPECT_TRUE(contains(r.output, "MB/s")) << r.output;
  EXPECT_TRUE(contains(r.output, "tokens/s")) << r.output;
  EXPECT_TRUE(path_exists(dir / "out/ds.bin"));
  EXPECT_TRUE(path_exists(dir / "out/ds.idx"));

  r = run_reef({"data", "inspect", dir / "out/ds", "--tokenizer", "byte", "--samples", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "documents: 122\n")) << r.output;
  EXPECT_TRUE(contains(r.output, "sequences: 122\n")) << r.output;
  EXPECT_TRUE(contains(r.output, "dtype:     uint16")) << r.output;
  EXPECT_TRUE(contains(r.output, "histogram")) << r.output;
  EXPECT_TRUE(contains(r.output, "document number 0 déjà vu<|endoftext|>")) << r.output;
  EXPECT_TRUE(contains(r.output, "sample 2/2")) << r.output;

  // The same data prepared with one worker is byte-identical.
  r = run_reef({"data", "prepare", "--input", dir / "a.jsonl", dir / "b.txt", "--tokenizer", "byte",
                "--output", dir / "one", "--text-key", "body", "--append-eod", "--workers", "1",
                "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(dir / "one.bin"), read_file(dir / "out/ds.bin"));
  EXPECT_EQ(read_file(dir / "one.idx"), read_file(dir / "out/ds.idx"));
}

TEST(DataCli, BadInputExitsTwoAndWritesNothing) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "bad.jsonl",
                    "{\"text\": \"fine\"}\n{\"text\": \"fine\"}\n{\"text\": broken\n");
  auto r = run_reef({"data", "prepare", "--input", dir / "bad.jsonl", "--tokenizer", "byte",
                     "--output", dir / "ds", "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, dir / "bad.jsonl:3")) << r.output;
  EXPECT_FALSE(path_exists(dir / "ds.bin"));
  EXPECT_FALSE(path_exists(dir / "ds.idx"));
  for (const auto& f : list_dir(dir.path()))
    EXPECT_FALSE(contains(f, "ds.")) << "left behind: " << f;

  // --skip-bad keeps the good lines and reports the count.
  r = run_reef({"data", "prepare", "--input", dir / "bad.jsonl", "--tokenizer", "byte", "--output",
                dir / "ds", "--skip-bad", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "skipped 1 bad lines")) << r.output;
  EXPECT_TRUE(contains(r.output, "prepared 2 documents")) << r.output;

  r = run_reef({"data", "prepare", "--input", dir / "missing.jsonl", "--tokenizer", "byte",
                "--output", dir / "m"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_reef({"data", "prepare", "--input", dir / "bad.jsonl", "--tokenizer", "no-such-tokenizer",
                "--output", dir / "m"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_reef({"data", "inspect", dir / "nothing-here"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
}  // namespace reef
