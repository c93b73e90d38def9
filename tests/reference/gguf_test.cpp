// `reef export gguf` against gguf-py: tests/reference/gguf_reference.py makes tiny random HF
// folders with tokenizers (llama and mistral with a SentencePiece-style tokenizer, llama3 with
// llama3 RoPE scaling, qwen2, qwen3, gpt2, mixtral with stacked experts); each is exported in f32,
// f16, q8_0, q4_0, q4_k and q6_k (and bf16 for two), then gguf.GGUFReader reads every file back and
// the script compares every key, the tokenizer, tensor names, types, shapes and data with what
// llama.cpp's conventions give.
#include <gtest/gtest.h>

#include <sstream>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

class GgufReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::cached_python_output(
        testing::source_dir() + "/tests/reference/gguf_reference.py", {"make"});
    std::istringstream in(read_file(dir_ + "/cases.txt"));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) cases_.push_back(line);
    }
  }
  static std::string dir_;
  static std::vector<std::string> cases_;
};

std::string GgufReference::dir_;
std::vector<std::string> GgufReference::cases_;

TEST_F(GgufReference, EveryArchAndTypeReadsBackInGgufPy) {
  ASSERT_EQ(cases_.size(), 9u);
  testing::ScratchDir out;
  for (const auto& c : cases_) {
    std::vector<std::string> types = {"f32", "f16", "q8_0", "q4_0", "q4_k", "q6_k"};
    if (c == "llama" || c == "gpt2") types.push_back("bf16");
    for (const auto& t : types) {
      const std::string file = out / (c + "." + t + ".gguf");
      auto r = testing::run_reef(
          {"export", "gguf", "--model", dir_ + "/" + c, "--out", file, "--type", t});
      ASSERT_EQ(r.exit_code, 0) << c << " " << t << ": " << r.output;
      ASSERT_TRUE(path_exists(file)) << file;
    }
  }
  auto r = testing::run_python(
      {testing::source_dir() + "/tests/reference/gguf_reference.py", "check", dir_, out.path()});
  std::cout << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(GgufReference, UsageErrorsAreOneLineExitTwoAndWriteNothing) {
  testing::ScratchDir out;
  const std::string file = out / "m.gguf";
  // A folder whose config.json names an architecture Reef does not export.
  const std::string bert = out / "bert";
  make_dirs(bert);
  write_file_atomic(bert + "/config.json", R"({"model_type": "bert"})");
  // Gemma 2 loads nowhere in Reef yet: refused up front, naming what is exported.
  const std::string gemma = out / "gemma2";
  make_dirs(gemma);
  write_file_atomic(gemma + "/config.json", R"({"model_type": "gemma2"})");
  const std::vector<std::vector<std::string>> bad = {
      {"--model", dir_ + "/llama", "--out", file, "--type", "q5_k"},
      {"--model", out / "missing", "--out", file},
      {"--model", bert, "--out", file},
      {"--model", gemma, "--out", file},
      {"--model", out.path(), "--out", file},  // no config.json
  };
  for (const auto& args : bad) {
    std::vector<std::string> argv = {"export", "gguf"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = testing::run_reef(argv);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    std::string msg = r.output;
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << r.output;
    EXPECT_FALSE(path_exists(file));
    EXPECT_EQ(list_dir(out.path()), (std::vector<std::string>{"bert", "gemma2"}))
        << "left files behind";
    if (args[1] == gemma) {
      EXPECT_NE(msg.find("'gemma2' cannot be exported to GGUF"), std::string::npos) << msg;
      EXPECT_NE(msg.find("gemma"), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace reef
