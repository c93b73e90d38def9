// lm-evaluation-harness's own OpenAI clients against `reef serve` (serve_lm_eval.py) give the
// numbers `reef eval --model` gives on the same model and task YAMLs (eval_reference.py's tiny
// llama and tasks):
// - `local-completions` with default settings: requests are batches of token lists, the tokenizer
//   is the server's (/tokenizer_info, /tokenize), multiple choice scores the continuation from
//   echo + logprobs. Equal acc / acc_norm, per-choice log-likelihoods within 1e-4, equal
//   generate_until outputs and exact_match.
// - the same client over rolling windows (loglikelihood_rolling, max_length 50 = `reef eval
//   --max-length 48`): perplexities within 1e-4 relative.
// - `local-chat-completions` with apply_chat_template: equal outputs and exact_match to `reef eval
//   --apply-chat-template` (the server's fallback ChatML template on both sides).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/files.h"
#include "testing/serve_process.h"
#include "testing/testing.h"

namespace reef {
namespace {

using json = nlohmann::json;

class ServeLmEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ref_ = testing::cached_python_output(
        testing::source_dir() + "/tests/reference/eval_reference.py", {"make"});
    out_ = new testing::ScratchDir();
    const std::string t = ref_ + "/tasks/";
    auto eval = [&](const std::string& tasks, const std::string& out,
                    std::vector<std::string> extra) {
      std::vector<std::string> args = {
          "eval", "--model",    ref_ + "/model", "--tasks",  tasks,        "--threads",
          "1",    "--progress", "off",           "--output", (*out_) / out};
      args.insert(args.end(), extra.begin(), extra.end());
      return testing::run_reef(args);
    };
    local_ =
        eval(t + "tiny_mc.yaml," + t + "tiny_mc_self.yaml," + t + "tiny_gen.yaml", "local", {});
    rolling_ = eval(t + "tiny_ppl.yaml", "rolling", {"--max-length", "48"});
    chat_ = eval(t + "tiny_gen.yaml", "chat", {"--apply-chat-template"});

    testing::ServeProcess server(ref_ + "/model", {});
    client_ = testing::run_python({testing::source_dir() + "/tests/reference/serve_lm_eval.py",
                                   server.base_url(), "model", ref_ + "/tasks",
                                   (*out_) / "lm_eval.json"});
    server_exit_ = server.stop();
    server_log_ = server.log();
    if (client_.exit_code == 0) harness_ = json::parse(read_file((*out_) / "lm_eval.json"));
  }
  static void TearDownTestSuite() { delete out_; }

  void SetUp() override {
    for (const auto* r : {&local_, &rolling_, &chat_}) ASSERT_EQ(r->exit_code, 0) << r->output;
    ASSERT_EQ(client_.exit_code, 0) << client_.output << "\nserver log:\n" << server_log_;
    EXPECT_EQ(server_exit_, 0) << server_log_;
  }

  static json results(const std::string& run) {
    return json::parse(read_file((*out_) / (run + "/results.json")));
  }
  static std::vector<json> samples(const std::string& run, const std::string& task) {
    std::istringstream in(read_file((*out_) / (run + "/samples_" + task + ".jsonl")));
    std::vector<json> rows;
    for (std::string line; std::getline(in, line);) rows.push_back(json::parse(line));
    return rows;
  }
  static double metric(const json& r, const std::string& task, const std::string& key) {
    return r.at("results").at(task).at(key).get<double>();
  }

  static std::string ref_, server_log_;
  static json harness_;
  static testing::ScratchDir* out_;
  static testing::ProcResult local_, rolling_, chat_, client_;
  static int server_exit_;
};

std::string ServeLmEval::ref_, ServeLmEval::server_log_;
json ServeLmEval::harness_;
testing::ScratchDir* ServeLmEval::out_ = nullptr;
testing::ProcResult ServeLmEval::local_, ServeLmEval::rolling_, ServeLmEval::chat_,
    ServeLmEval::client_;
int ServeLmEval::server_exit_ = -1;

TEST_F(ServeLmEval, DefaultClientUsesTheServersTokenizer) {
  // The harness's auto-detection found /tokenizer_info and /tokenize.
  EXPECT_EQ(harness_["completions"]["tokenizer_backend"], "remote");
}

TEST_F(ServeLmEval, MultipleChoiceOverCompletionsEqualsReefEval) {
  const json local = results("local");
  for (const std::string task : {"tiny_mc", "tiny_mc_self"}) {
    const json& h = harness_["completions"][task];
    for (const char* m : {"acc,none", "acc_norm,none"})
      EXPECT_EQ(h["metrics"][m].get<double>(), metric(local, task, m)) << task << " " << m;
    auto got = samples("local", task);
    ASSERT_EQ(got.size(), h["samples"].size()) << task;
    for (const auto& w : h["samples"]) {
      const json& g = got.at(w["doc_id"].get<size_t>());
      EXPECT_EQ(g["prompt"].get<std::string>(), w["arguments"][0][0].get<std::string>()) << task;
      ASSERT_EQ(g["loglikelihoods"].size(), w["resps"].size()) << task;
      for (size_t c = 0; c < w["resps"].size(); ++c)
        EXPECT_NEAR(g["loglikelihoods"][c].get<double>(), w["resps"][c][0][0].get<double>(), 1e-4)
            << task << " doc " << w["doc_id"] << " choice " << c;
    }
  }
  // The two few-shot tasks differ: a server that answered every choice alike would fail above.
  EXPECT_GT(metric(local, "tiny_mc", "acc,none"), 0);
}

TEST_F(ServeLmEval, GenerateUntilOverCompletionsEqualsReefEval) {
  const json local = results("local");
  const json& h = harness_["completions"]["tiny_gen"];
  for (const char* m : {"exact_match,first_word", "exact_match,last_word"})
    EXPECT_EQ(h["metrics"][m].get<double>(), metric(local, "tiny_gen", m)) << m;
  EXPECT_GT(metric(local, "tiny_gen", "exact_match,first_word"), 0);
  auto got = samples("local", "tiny_gen");
  for (const auto& w : h["samples"]) {
    const json& g = got.at(w["doc_id"].get<size_t>());
    EXPECT_EQ(g["prediction"].get<std::string>(), w["resps"][0][0].get<std::string>())
        << "doc " << w["doc_id"];
  }
}

TEST_F(ServeLmEval, RollingPerplexityOverCompletionsEqualsReefEval) {
  const json local = results("rolling");
  const json& h = harness_["rolling"]["tiny_ppl"];
  for (const char* m : {"word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none"}) {
    const double want = metric(local, "tiny_ppl", m);
    EXPECT_NEAR(h["metrics"][m].get<double>(), want, 1e-4 * std::fabs(want)) << m;
  }
  auto got = samples("rolling", "tiny_ppl");
  for (const auto& w : h["samples"]) {
    const double want = got.at(w["doc_id"].get<size_t>())["metrics"]["loglikelihood"].get<double>();
    EXPECT_NEAR(w["resps"][0][0].get<double>(), want, 1e-4 * std::fabs(want));
  }
}

TEST_F(ServeLmEval, ChatCompletionsEqualReefEvalWithTheChatTemplate) {
  const json local = results("chat");
  const json& h = harness_["chat"]["tiny_gen"];
  for (const char* m : {"exact_match,first_word", "exact_match,last_word"})
    EXPECT_EQ(h["metrics"][m].get<double>(), metric(local, "tiny_gen", m)) << m;
  auto got = samples("chat", "tiny_gen");
  ASSERT_FALSE(got.empty());
  // reef eval's prompt is the rendered template; the harness sent the messages.
  EXPECT_EQ(got[0]["prompt"].get<std::string>().rfind("<|im_start|>user\n", 0), 0u)
      << got[0]["prompt"];
  for (const auto& w : h["samples"]) {
    const size_t id = w["doc_id"].get<size_t>();
    // The harness logs its chat prompt (a JsonChatStr) as [messages as JSON text].
    const json& arg = w["arguments"][0][0];
    const json messages = json::parse((arg.is_array() ? arg[0] : arg).get<std::string>());
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_NE(
        got.at(id)["prompt"].get<std::string>().find(messages[0]["content"].get<std::string>()),
        std::string::npos);
    EXPECT_EQ(got.at(id)["prediction"].get<std::string>(), w["resps"][0][0].get<std::string>())
        << "doc " << id;
  }
}

}  // namespace
}  // namespace reef
