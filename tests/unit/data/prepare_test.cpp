// Tests for data/prepare.h: JSONL/text -> indexed dataset round trips (byte and HF BPE
// tokenizers), output identical for any number of workers, bad lines failing with file:line and
// leaving nothing behind, --skip-bad counting, dtype choice, and the inspect report.
#include "reef/data/prepare.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/data/documents.h"
#include "testing/testing.h"

namespace reef {
namespace {

std::string jsonl_line(const std::string& text) {
  return nlohmann::json{{"text", text}, {"id", 7}}.dump() + "\n";
}

// A corpus with multibyte text, escapes, an empty document and varied lengths.
std::vector<std::string> make_docs(int n) {
  const char* words[] = {"the", "cat",    "sat",  "on", "a",         "mat",      "déjà",
                         "vu",  "привет", "你好", "😀",  "tab\there", "quote\"d", "back\\slash"};
  std::vector<std::string> docs;
  for (int i = 0; i < n; ++i) {
    std::string d;
    for (int w = 0; w < 1 + (i * 37) % 50; ++w)
      d += std::string(words[(i * 7 + w * 3) % 14]) + (w % 9 == 8 ? "\n" : " ");
    docs.push_back(d);
  }
  return docs;
}

PrepareOptions options(std::vector<std::string> inputs, std::string prefix) {
  PrepareOptions o;
  o.inputs = std::move(inputs);
  o.output_prefix = std::move(prefix);
  o.progress = "none";
  return o;
}

// Every document of `ds`, as int32 ids.
std::vector<std::vector<int32_t>> read_back(const std::string& prefix) {
  IndexedDataset ds(prefix);
  std::vector<std::vector<int32_t>> out;
  for (int64_t d = 0; d < ds.num_documents(); ++d) {
    std::vector<int32_t> ids;
    ds.document(d).append_to(&ids);
    out.push_back(ids);
  }
  return out;
}

void expect_round_trip(const std::vector<std::string>& docs, const Tokenizer& tok,
                       const std::string& prefix, bool append_eod) {
  std::vector<std::vector<int32_t>> want;
  for (const auto& d : docs) {
    auto ids = tok.encode(d);
    if (append_eod) ids.push_back(tok.eos_id());
    if (!ids.empty()) want.push_back(ids);
  }
  auto got = read_back(prefix);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "document " << i;
}

TEST(Prepare, JsonlAndTextRoundTrip) {
  testing::ScratchDir dir;
  auto docs = make_docs(300);
  docs[5] = "";  // an empty document: dropped without eod, one eod token with it
  std::string jsonl;
  for (size_t i = 0; i < docs.size(); ++i)
    jsonl += jsonl_line(docs[i]) + (i % 50 == 0 ? "\n  \n" : "");
  write_file_atomic(dir / "a.jsonl", jsonl);
  write_file_atomic(dir / "b.txt", "first doc\nline two\n\n\n  \nsecond\r\n\nthird é");
  ByteTokenizer tok;
  for (bool eod : {false, true}) {
    auto o = options({dir / "a.jsonl", dir / "b.txt"}, dir / (eod ? "out/eod" : "out/plain"));
    o.append_eod = eod;
    o.batch_docs = 17;
    o.workers = 2;
    PrepareStats st = prepare_dataset(o, tok);
    std::vector<std::string> all = read_documents(dir / "a.jsonl", "auto", "text");
    for (auto& d : read_documents(dir / "b.txt", "auto", "text")) all.push_back(d);
    ASSERT_EQ(all.size(), 303u);
    expect_round_trip(all, tok, o.output_prefix, eod);
    EXPECT_EQ(st.documents, eod ? 303 : 302);
    EXPECT_EQ(st.empty, eod ? 0 : 1);
    EXPECT_EQ(st.skipped, 0);
    EXPECT_EQ(st.dtype, TokenDType::kUInt16);
    EXPECT_EQ(st.input_bytes, static_cast<int64_t>(read_file(dir / "a.jsonl").size() +
                                                   read_file(dir / "b.txt").size()));
    IndexedDataset ds(o.output_prefix);
    EXPECT_EQ(ds.dtype(), TokenDType::kUInt16);
    EXPECT_EQ(ds.num_tokens(), st.tokens);
    EXPECT_EQ(ds.num_documents(), st.documents);
    EXPECT_EQ(st.output_bytes, static_cast<int64_t>(read_file(bin_path(o.output_prefix)).size()));
    EXPECT_NE(
        format_prepare_summary(st, o.output_prefix).find(std::to_string(st.tokens) + " tokens"),
        std::string::npos);
  }
}

TEST(Prepare, IdenticalOutputForAnyWorkerCount) {
  testing::ScratchDir dir;
  std::string jsonl;
  for (const auto& d : make_docs(2000)) jsonl += jsonl_line(d);
  write_file_atomic(dir / "a.jsonl", jsonl);
  ByteTokenizer tok;
  for (int workers : {1, 3}) {
    auto o = options({dir / "a.jsonl"}, dir / ("w" + std::to_string(workers)));
    o.workers = workers;
    o.append_eod = true;
    o.batch_docs = 13;  // many small batches, so the workers really overtake each other
    o.batch_bytes = 4096;
    prepare_dataset(o, tok);
  }
  EXPECT_EQ(read_file(bin_path(dir / "w1")), read_file(bin_path(dir / "w3")));
  EXPECT_EQ(read_file(idx_path(dir / "w1")), read_file(idx_path(dir / "w3")));
  EXPECT_EQ(IndexedDataset(dir / "w3").num_documents(), 2000);
}

// Runs prepare on `content` and returns the usage error's message ("" if none was thrown).
std::string prepare_error(const testing::ScratchDir& dir, const std::string& name,
                          const std::string& content, int workers) {
  write_file_atomic(dir / name, content);
  auto o = options({dir / name}, dir / "bad");
  o.workers = workers;
  o.batch_docs = 2;
  ByteTokenizer tok;
  try {
    prepare_dataset(o, tok);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_FALSE(path_exists(bin_path(dir / "bad")));
    EXPECT_FALSE(path_exists(idx_path(dir / "bad")));
    for (const auto& f : list_dir(dir.path()))
      EXPECT_EQ(f.find("bad."), std::string::npos) << "left behind: " << f;
    return e.what();
  }
  return "";
}

TEST(Prepare, BadLineIsUsageErrorWithFileAndLine) {
  testing::ScratchDir dir;
  const std::string ok = jsonl_line("fine") + jsonl_line("also fine") + "\n";
  for (int workers : {1, 3}) {
    std::string msg = prepare_error(
        dir, "m.jsonl", ok + "{\"text\": oops}\n" + jsonl_line("x") + "{bad\n", workers);
    EXPECT_NE(msg.find(dir / "m.jsonl:4: malformed JSON"), std::string::npos) << msg;
    msg = prepare_error(dir, "k.jsonl", ok + "{\"body\": \"no text\"}\n", workers);
    EXPECT_NE(msg.find(dir / "k.jsonl:4: no 'text' field"), std::string::npos) << msg;
    msg = prepare_error(dir, "s.jsonl", ok + ok + "{\"text\": 12}\n", workers);
    EXPECT_NE(msg.find(dir / "s.jsonl:7: field 'text' is not a string"), std::string::npos) << msg;
    msg = prepare_error(dir, "a.jsonl", ok + "[1, 2]\n", workers);
    EXPECT_NE(msg.find(dir / "a.jsonl:4: expected a JSON object"), std::string::npos) << msg;
    msg = prepare_error(dir, "u.jsonl", ok + "{\"text\": \"ab\xff\"}\n", workers);
    EXPECT_NE(msg.find(dir / "u.jsonl:4: invalid UTF-8"), std::string::npos) << msg;
    msg = prepare_error(dir, "u.txt", "doc one\n\ndoc two\nline \xc3\x28 two\n", workers);
    EXPECT_NE(msg.find(dir / "u.txt:4: invalid UTF-8"), std::string::npos) << msg;
  }
  EXPECT_NE(prepare_error(dir, "empty.jsonl", "\n\n", 1).find("no documents"), std::string::npos);
  ByteTokenizer tok;
  try {
    prepare_dataset(options({dir / "missing.jsonl"}, dir / "bad"), tok);
    ADD_FAILURE() << "no error for a missing input";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("missing.jsonl"), std::string::npos);
  }
}

TEST(Prepare, GzipAndZstdInputsGiveTheSameDatasetAsPlainOnes) {
  testing::ScratchDir dir;
  std::string jsonl, text;
  for (const auto& d : make_docs(400)) jsonl += jsonl_line(d);
  for (const auto& d : make_docs(50)) text += d + "\n\n";
  write_file_atomic(dir / "a.jsonl", jsonl);
  write_file_atomic(dir / "b.txt", text);
  write_file_atomic(dir / "a.jsonl.gz", testing::gzip_bytes(jsonl));
  write_file_atomic(dir / "b.txt.zst", testing::zstd_bytes(text));
  write_file_atomic(dir / "a.jsonl.zst", testing::zstd_bytes(jsonl));
  ByteTokenizer tok;
  auto o = options({dir / "a.jsonl", dir / "b.txt"}, dir / "plain");
  auto plain = prepare_dataset(o, tok);
  o = options({dir / "a.jsonl.gz", dir / "b.txt.zst"}, dir / "packed");
  o.workers = 2;
  auto packed = prepare_dataset(o, tok);
  EXPECT_EQ(packed.documents, plain.documents);
  EXPECT_EQ(packed.input_bytes, plain.input_bytes);  // decompressed bytes
  EXPECT_EQ(read_file(bin_path(dir / "packed")), read_file(bin_path(dir / "plain")));
  EXPECT_EQ(read_file(idx_path(dir / "packed")), read_file(idx_path(dir / "plain")));
  // Documents mode reads them too.
  EXPECT_EQ(read_documents(dir / "a.jsonl.zst", "auto", "text"),
            read_documents(dir / "a.jsonl", "auto", "text"));
  EXPECT_EQ(read_documents(dir / "b.txt.zst", "auto", "text"),
            read_documents(dir / "b.txt", "auto", "text"));
  // A bad line inside a compressed file is reported at its line.
  write_file_atomic(dir / "bad.jsonl.gz", testing::gzip_bytes(jsonl_line("ok") + "{oops\n"));
  try {
    prepare_dataset(options({dir / "bad.jsonl.gz"}, dir / "bad"), tok);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "bad.jsonl.gz:2: malformed JSON"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(path_exists(bin_path(dir / "bad")));
}

TEST(Prepare, SkipBadCountsAndSkips) {
  testing::ScratchDir dir;
  std::string content = jsonl_line("one") + "{oops\n" + jsonl_line("two") + "{\"text\": null}\n" +
                        "{\"t\": \"x\"}\n" + "{\"text\": \"\xc0\xaf\"}\n" + jsonl_line("three");
  write_file_atomic(dir / "a.jsonl", content);
  ByteTokenizer tok;
  for (int workers : {1, 3}) {
    auto o = options({dir / "a.jsonl"}, dir / ("out" + std::to_string(workers)));
    o.skip_bad = true;
    o.workers = workers;
    o.batch_docs = 2;
    PrepareStats st = prepare_dataset(o, tok);
    EXPECT_EQ(st.skipped, 4);
    EXPECT_EQ(st.documents, 3);
    EXPECT_NE(st.first_skipped.find(dir / "a.jsonl:2:"), std::string::npos) << st.first_skipped;
    EXPECT_NE(format_prepare_summary(st, o.output_prefix).find("skipped 4 bad lines"),
              std::string::npos);
    expect_round_trip({"one", "two", "three"}, tok, o.output_prefix, false);
  }
}

// A byte tokenizer that claims a vocabulary too large for uint16.
class BigVocabTokenizer : public ByteTokenizer {
 public:
  int64_t vocab_size() const override { return 100000; }
};

TEST(Prepare, Int32TokensWhenTheVocabularyDoesNotFitUInt16) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "a.txt", "hello\n\nworld\n");
  BigVocabTokenizer tok;
  auto o = options({dir / "a.txt"}, dir / "big");
  o.append_eod = true;
  PrepareStats st = prepare_dataset(o, tok);
  EXPECT_EQ(st.dtype, TokenDType::kInt32);
  EXPECT_EQ(IndexedDataset(dir / "big").dtype(), TokenDType::kInt32);
  EXPECT_EQ(st.output_bytes, 4 * 12);
  expect_round_trip({"hello", "world"}, tok, dir / "big", true);
}

TEST(Prepare, InspectReportsCountsHistogramAndSamples) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "a.jsonl", jsonl_line("a") + jsonl_line("hello world") +
                                         jsonl_line("abcd") + jsonl_line("xyz"));
  ByteTokenizer tok;
  prepare_dataset(options({dir / "a.jsonl"}, dir / "ds"), tok);
  std::string r = inspect_dataset(dir / "ds", &tok, 2);
  EXPECT_NE(r.find("documents: 4\n"), std::string::npos) << r;
  EXPECT_NE(r.find("sequences: 4\n"), std::string::npos) << r;
  EXPECT_NE(r.find("tokens:    19\n"), std::string::npos) << r;
  EXPECT_NE(r.find("dtype:     uint16"), std::string::npos) << r;
  EXPECT_NE(r.find("8-15"), std::string::npos) << r;      // "hello world" (11)
  EXPECT_NE(r.find("2-3"), std::string::npos) << r;       // "xyz" (3)
  EXPECT_NE(r.find("\na\n"), std::string::npos) << r;     // sample of document 0
  EXPECT_NE(r.find("\nabcd\n"), std::string::npos) << r;  // sample of document 2
  EXPECT_EQ(inspect_dataset(dir / "ds", nullptr, 2).find("sample"), std::string::npos);
  try {
    inspect_dataset(dir / "nope", nullptr, 0);
    ADD_FAILURE() << "no error for a missing dataset";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  }
}

TEST(Prepare, HfBpeTokenizerRoundTrip) {
  testing::ScratchDir dir;
  auto docs = make_docs(200);
  auto r = testing::run_python(
      {"-c",
       "import sys\n"
       "from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers\n"
       "tok = Tokenizer(models.BPE())\n"
       "tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)\n"
       "tok.decoder = decoders.ByteLevel()\n"
       "tr = trainers.BpeTrainer(vocab_size=400, special_tokens=['<|endoftext|>'], "
       "show_progress=False,\n"
       "                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())\n"
       "tok.train_from_iterator(['the cat sat on a mat déjà vu привет 你好'] * 50, tr)\n"
       "tok.save(sys.argv[1])\n",
       dir / "tokenizer.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto tok = load_tokenizer(dir / "tokenizer.json");
  ASSERT_LT(tok->vocab_size(), 65500);
  std::string jsonl;
  for (const auto& d : docs) jsonl += jsonl_line(d);
  write_file_atomic(dir / "a.jsonl", jsonl);
  auto o = options({dir / "a.jsonl"}, dir / "hf");
  o.workers = 3;
  o.batch_docs = 9;
  PrepareStats st = prepare_dataset(o, *tok);
  EXPECT_EQ(st.documents, 200);
  EXPECT_LT(st.tokens, static_cast<int64_t>(jsonl.size()) / 2);  // merges happened
  expect_round_trip(docs, *tok, o.output_prefix, false);
}

}  // namespace
}  // namespace reef
