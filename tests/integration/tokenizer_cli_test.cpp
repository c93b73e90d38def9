// End-to-end tests of `reef tokenizer train` through the real binary, against HF: on a seeded
// mixed-language corpus (tokenizer_reference.py), the vocabulary and merges equal those of HF
// `tokenizers`' own BpeTrainer with the same settings, and the written folder loads in
// `tokenizers` and `transformers` and encodes held-out documents to the same ids as Reef's
// HfTokenizer. Plus the summary, text input, `tokenizer encode`, and usage errors (exit 2,
// nothing written).
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "reef/base/files.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "testing/testing.h"

namespace reef {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using testing::run_python;
using testing::run_reef;

const std::string kScript = "tests/integration/tokenizer_reference.py";

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::vector<std::string> read_texts(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line).at("text").get<std::string>());
  return out;
}

class TokenizerCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir();
    for (auto [name, n, seed] :
         {std::tuple{"train.jsonl", "4000", "1"}, std::tuple{"eval.jsonl", "2000", "2"}}) {
      auto r = run_python({kScript, "corpus", *dir_ / name, n, seed});
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string path(const std::string& name) { return *dir_ / name; }
  static testing::ScratchDir* dir_;
};
testing::ScratchDir* TokenizerCli::dir_ = nullptr;

struct Setting {
  std::string pattern, vocab, min_freq, specials, max_len;
};

// Exact equality with HF's BpeTrainer: same ids for the same strings in the same order, and the
// same merges in the same order.
TEST_F(TokenizerCli, VocabAndMergesEqualHfBpeTrainer) {
  for (const Setting& s :
       {Setting{"llama3", "3000", "2", "<|endoftext|>", "0"},
        Setting{"gpt2", "6000", "0", "<s>,</s>,<pad>", "0"},
        Setting{"qwen2", "2500", "3", "<|endoftext|>,<|im_start|>,<|im_end|>", "8"}}) {
    SCOPED_TRACE(s.pattern);
    std::string out = path("eq_" + s.pattern);
    auto r =
        run_reef({"tokenizer", "train", "--input", path("train.jsonl"), "--vocab-size", s.vocab,
                  "--output", out, "--min-frequency", s.min_freq, "--special-tokens", s.specials,
                  "--pattern", s.pattern, "--max-token-length", s.max_len, "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::string hf_file = out + "_hf.json";
    r = run_python({kScript, "train", path("train.jsonl"), hf_file, s.vocab, s.min_freq, s.pattern,
                    s.specials, s.max_len});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto ours = ordered_json::parse(read_file(out + "/tokenizer.json"));
    auto theirs = ordered_json::parse(read_file(hf_file));
    const auto& ov = ours["model"]["vocab"];
    const auto& tv = theirs["model"]["vocab"];
    ASSERT_EQ(ov.size(), tv.size());
    EXPECT_EQ(ov.size(), std::stoul(s.vocab));
    auto oi = ov.items().begin();
    int mismatches = 0;
    for (const auto& t : tv.items()) {
      if ((oi.key() != t.key() || oi.value() != t.value()) && ++mismatches < 5)
        ADD_FAILURE() << "vocab: ours " << oi.key() << "=" << oi.value() << ", HF " << t.key()
                      << "=" << t.value();
      ++oi;
    }
    const auto& om = ours["model"]["merges"];
    const auto& tm = theirs["model"]["merges"];
    ASSERT_EQ(om.size(), tm.size());
    for (size_t i = 0; i < om.size(); ++i)
      if (om[i] != tm[i]) {
        ADD_FAILURE() << "first differing merge " << i << ": ours " << om[i].dump() << ", HF "
                      << tm[i].dump();
        break;
      }
    EXPECT_EQ(ours["added_tokens"].dump(), theirs["added_tokens"].dump());
    EXPECT_EQ(ours["pre_tokenizer"].dump(), theirs["pre_tokenizer"].dump());
  }
}

// HF loads what Reef wrote, and tokenizers, transformers and Reef encode held-out text alike.
TEST_F(TokenizerCli, TrainedTokenizerEncodesLikeHf) {
  const auto docs = read_texts(path("eval.jsonl"));
  for (const char* pattern : {"llama3", "gpt2", "qwen2"}) {
    SCOPED_TRACE(pattern);
    std::string out = path(std::string("enc_") + pattern);
    auto r = run_reef({"tokenizer", "train", "--input", path("train.jsonl"), "--vocab-size", "4000",
                       "--output", out, "--special-tokens", "<|endoftext|>,<|pad|>", "--pattern",
                       pattern, "--threads", "3", "--progress", "off"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "trained tokenizer: 4000 documents")) << r.output;
    EXPECT_TRUE(contains(r.output, "vocab 4000 (2 specials, 256 bytes, 3742 merges)")) << r.output;
    r = run_python({kScript, "encode", out, path("eval.jsonl"), out + "/hf_ids.jsonl"});
    ASSERT_EQ(r.exit_code, 0) << r.output;

    HfTokenizer tok(out + "/tokenizer.json", out + "/tokenizer_config.json");
    std::istringstream in(read_file(out + "/hf_ids.jsonl"));
    std::string line;
    size_t i = 0, mismatches = 0;
    int64_t n_ids = 0, n_bytes = 0;
    while (std::getline(in, line)) {
      json rec = json::parse(line);
      if (rec.contains("meta")) {
        EXPECT_EQ(rec["meta"]["eos"], "<|endoftext|>");
        EXPECT_EQ(rec["meta"]["pad"], "<|pad|>");
        EXPECT_EQ(rec["meta"]["vocab"], 4000);
        continue;
      }
      ASSERT_LT(i, docs.size());
      auto want = rec["ids"].get<std::vector<int32_t>>();
      // HF parses special-token text by default; so does Reef when asked.
      auto got = tok.encode(docs[i], EncodeOptions{false, true});
      if (got != want && ++mismatches <= 3) ADD_FAILURE() << "doc " << i << " differs: " << docs[i];
      EXPECT_EQ(rec["decoded"].get<std::string>(), docs[i]);
      EXPECT_EQ(rec["tf_decoded"].get<std::string>(), docs[i]);
      EXPECT_EQ(tok.decode(got, true), docs[i]);
      n_ids += static_cast<int64_t>(got.size());
      n_bytes += static_cast<int64_t>(docs[i].size());
      ++i;
    }
    EXPECT_EQ(i, docs.size());
    EXPECT_EQ(mismatches, 0u);
    EXPECT_LT(n_ids * 2, n_bytes);  // it learned something: under half a token per byte
    EXPECT_EQ(tok.eos_id(), 0);
    EXPECT_EQ(tok.pad_id(), 1);
  }
}

TEST_F(TokenizerCli, TextInputsAndEncode) {
  write_file_atomic(path("a.txt"),
                    "first document\nstill first\n\nsecond document here\n\n\nthird one\n");
  write_file_atomic(path("b.txt"), "hello hello hello world\n");
  auto r =
      run_reef({"tokenizer", "train", "--input", path("a.txt"), path("b.txt"), "--vocab-size",
                "300", "--output", path("txt/tok"), "--progress", "none", "--min-frequency", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "trained tokenizer: 4 documents")) << r.output;
  EXPECT_TRUE(path_exists(path("txt/tok/tokenizer_config.json")));
  // Not enough pairs for 300: a warning, and the smaller vocabulary.
  EXPECT_TRUE(contains(r.output, "ran out of pairs")) << r.output;
  HfTokenizer tok(path("txt/tok/tokenizer.json"), "");
  std::vector<int32_t> ids = tok.encode("hello world");
  std::string want;
  for (size_t i = 0; i < ids.size(); ++i) want += (i ? " " : "") + std::to_string(ids[i]);
  write_file_atomic(path("in.txt"), "hello world");
  r = testing::run_process({"/bin/sh", "-c",
                            testing::reef_bin() + " tokenizer encode --tokenizer " +
                                path("txt/tok") + " < " + path("in.txt")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, want + "\n")) << r.output << " want " << want;
}

TEST_F(TokenizerCli, UsageErrorsExitTwoAndWriteNothing) {
  write_file_atomic(path("plain"), "x");
  const std::string out = path("err_out");
  std::vector<std::vector<std::string>> cases = {
      {"--input", path("missing.jsonl"), "--vocab-size", "1000", "--output", out},
      {"--input", path("train.jsonl"), "--vocab-size", "200", "--output", out},
      {"--input", path("train.jsonl"), "--vocab-size", "258", "--special-tokens", "<a>,<b>,<c>",
       "--output", out},
      {"--input", path("train.jsonl"), "--vocab-size", "1000", "--output", path("plain")},
      {"--input", path("train.jsonl"), "--vocab-size", "1000", "--output", path("plain") + "/sub"},
      {"--input", path("train.jsonl"), "--vocab-size", "1000", "--pattern", "(unclosed", "--output",
       out},
      {"--input", path("train.jsonl"), "--vocab-size", "1000", "--format", "csv", "--output", out},
      {"--input", path("train.jsonl"), "--vocab-size", "1000", "--text-key", "body", "--output",
       out},
      {"--input", path("train.jsonl"), "--output", out},
  };
  for (auto args : cases) {
    args.insert(args.begin(), {"tokenizer", "train"});
    auto r = run_reef(args);
    EXPECT_EQ(r.exit_code, 2) << args[3] << " " << args[5] << ": " << r.output;
    EXPECT_LT(std::count(r.output.begin(), r.output.end(), '\n'), 4) << r.output;
    EXPECT_FALSE(path_exists(out)) << r.output;
  }
  for (const auto& f : list_dir(dir_->path()))
    EXPECT_FALSE(contains(f, ".tmp.")) << "left behind: " << f;
  auto r = run_reef({"tokenizer", "train", "--input", path("missing.jsonl"), "--vocab-size", "1000",
                     "--output", out});
  EXPECT_TRUE(contains(r.output, "missing.jsonl")) << r.output;
  r = run_reef({"tokenizer", "train", "--input", path("train.jsonl"), "--vocab-size", "200",
                "--output", out});
  EXPECT_TRUE(contains(r.output, "vocab size 200 is smaller")) << r.output;
}

}  // namespace
}  // namespace reef
