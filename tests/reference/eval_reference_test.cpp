// `reef eval` against lm-evaluation-harness (tests/reference/eval_reference.py): on a tiny random
// llama made by transformers and the same task YAMLs and JSONL files, lm-eval's simple_evaluate
// with HFLM and `reef eval` give equal acc and acc_norm (multiple choice, few-shot from another
// split and from the test split), equal word/byte perplexity and bits per byte within 1e-4
// relative (documents longer than the context, so several rolling windows each), and equal
// generate_until outputs, filtered answers and exact_match. Per sample, the prompts (few-shot
// examples drawn with seed 1234) are byte-identical and the log-likelihoods agree.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

using json = nlohmann::json;

class EvalReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ref_ = testing::cached_python_output(
        testing::source_dir() + "/tests/reference/eval_reference.py", {"make"});
    expected_ = json::parse(read_file(ref_ + "/expected.json"));
    out_ = new testing::ScratchDir();
    std::string tasks;
    for (const char* t : {"tiny_mc", "tiny_mc_self", "tiny_ppl", "tiny_gen"})
      tasks += std::string(tasks.empty() ? "" : ",") + ref_ + "/tasks/" + t + ".yaml";
    run_ = testing::run_reef({"eval", "--model", ref_ + "/model", "--tasks", tasks, "--max-length",
                              "48", "--batch-size", "4", "--threads", "1", "--progress", "off",
                              "--output", (*out_) / "out"});
    if (run_.exit_code == 0) results_ = json::parse(read_file((*out_) / "out/results.json"));
  }
  static void TearDownTestSuite() { delete out_; }

  void SetUp() override { ASSERT_EQ(run_.exit_code, 0) << run_.output; }

  static std::vector<json> samples(const std::string& task) {
    std::istringstream in(read_file((*out_) / ("out/samples_" + task + ".jsonl")));
    std::vector<json> rows;
    for (std::string line; std::getline(in, line);) rows.push_back(json::parse(line));
    return rows;
  }
  static double metric(const json& r, const std::string& task, const std::string& key) {
    return r.at("results").at(task).at(key).get<double>();
  }

  static std::string ref_;
  static json expected_, results_;
  static testing::ScratchDir* out_;
  static testing::ProcResult run_;
};

std::string EvalReference::ref_;
json EvalReference::expected_, EvalReference::results_;
testing::ScratchDir* EvalReference::out_ = nullptr;
testing::ProcResult EvalReference::run_;

TEST_F(EvalReference, MultipleChoiceAccuracyEqualsLmEval) {
  for (const std::string task : {"tiny_mc", "tiny_mc_self"}) {
    const json& want = expected_[task];
    EXPECT_EQ(metric(results_, task, "acc,none"), want["metrics"]["acc,none"].get<double>())
        << task;
    EXPECT_EQ(metric(results_, task, "acc_norm,none"),
              want["metrics"]["acc_norm,none"].get<double>())
        << task;
    auto got = samples(task);
    ASSERT_EQ(got.size(), want["samples"].size()) << task;
    for (const auto& w : want["samples"]) {
      const json& g = got.at(w["doc_id"].get<size_t>());
      // Each request's arguments are (context, target_delimiter + choice).
      EXPECT_EQ(g["prompt"].get<std::string>(), w["arguments"][0][0].get<std::string>())
          << task << " doc " << w["doc_id"];
      ASSERT_EQ(g["loglikelihoods"].size(), w["resps"].size());
      for (size_t c = 0; c < w["resps"].size(); ++c)
        EXPECT_NEAR(g["loglikelihoods"][c].get<double>(), w["resps"][c][0][0].get<double>(), 1e-4)
            << task << " doc " << w["doc_id"] << " choice " << c;
    }
  }
  EXPECT_EQ(results_["n-shot"]["tiny_mc"], 2);
  EXPECT_EQ(results_["n-shot"]["tiny_mc_self"], 3);
}

TEST_F(EvalReference, PerplexityEqualsLmEval) {
  const json& want = expected_["tiny_ppl"];
  for (const char* m : {"word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none"}) {
    const double w = want["metrics"][m].get<double>(), g = metric(results_, "tiny_ppl", m);
    EXPECT_NEAR(g, w, 1e-4 * std::fabs(w)) << m;
  }
  auto got = samples("tiny_ppl");
  for (const auto& w : want["samples"]) {
    const double wl = w["resps"][0][0].get<double>();
    EXPECT_NEAR(got.at(w["doc_id"].get<size_t>())["metrics"]["loglikelihood"].get<double>(), wl,
                1e-4 * std::fabs(wl));
  }
}

TEST_F(EvalReference, GenerateUntilEqualsLmEval) {
  const json& want = expected_["tiny_gen"];
  for (const char* m : {"exact_match,first_word", "exact_match,last_word"})
    EXPECT_EQ(metric(results_, "tiny_gen", m), want["metrics"][m].get<double>()) << m;
  EXPECT_GT(metric(results_, "tiny_gen", "exact_match,first_word"), 0);  // the data has hits
  auto got = samples("tiny_gen");
  // lm-eval logs one sample per (document, filter), filters in config order.
  std::map<size_t, int> seen;
  for (const auto& w : want["samples"]) {
    const size_t id = w["doc_id"].get<size_t>();
    const json& g = got.at(id);
    EXPECT_EQ(g["prompt"].get<std::string>(), w["arguments"][0][0].get<std::string>());
    EXPECT_EQ(g["prediction"].get<std::string>(), w["resps"][0][0].get<std::string>())
        << "doc " << id;
    const char* filter = seen[id]++ == 0 ? "first_word" : "last_word";
    EXPECT_EQ(g["filtered"][filter].get<std::string>(), w["filtered_resps"][0].get<std::string>())
        << "doc " << id << " filter " << filter;
  }
}

TEST_F(EvalReference, WritesMarkdownTable) {
  const std::string md = read_file((*out_) / "out/results.md");
  EXPECT_NE(md.find("|Tasks|Version|Filter|n-shot|Metric|"), std::string::npos) << md;
  EXPECT_NE(md.find("|tiny_mc|1|none|2|acc|"), std::string::npos) << md;
  EXPECT_NE(md.find("word_perplexity"), std::string::npos) << md;
}

}  // namespace
}  // namespace reef
