// `reef eval` end to end: the built-in synthetic tasks and YAML tasks on a tiny transformers-made
// llama (tests/reference/eval_reference.py), evaluated locally and through `--endpoint` against
// tests/integration/openai_test_server.py, which scores with transformers over real HTTP on
// loopback: multiple-choice accuracies and generations are equal, perplexities and
// log-likelihoods agree within 1e-4. A judge task scores generations through the server's chat
// endpoint, and its judge_score is the mean of the verdicts the server logged. Bad input is one
// line with exit code 2 and no output folder.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

using json = nlohmann::json;
using testing::run_reef;

std::vector<json> read_jsonl(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ref_ = testing::cached_python_output(
        testing::source_dir() + "/tests/reference/eval_reference.py", {"make"});
    dir_ = new testing::ScratchDir();
    const std::string port_file = (*dir_) / "port";
    server_pid_ = testing::spawn_process(
        {testing::python_bin(), testing::source_dir() + "/tests/integration/openai_test_server.py",
         ref_ + "/model", port_file, (*dir_) / "judge.jsonl"},
        dir_->path(), (*dir_) / "server.log");
    for (int i = 0; i < 1200 && !path_exists(port_file); ++i) {
      int rc = 0;
      if (testing::try_wait_process(server_pid_, &rc)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (path_exists(port_file)) url_ = "http://127.0.0.1:" + read_file(port_file) + "/v1";
  }
  static void TearDownTestSuite() {
    if (server_pid_ > 0) {
      kill(server_pid_, SIGTERM);
      testing::wait_process(server_pid_);
    }
    delete dir_;
  }
  void SetUp() override {
    ASSERT_FALSE(url_.empty()) << "the test server did not start: "
                               << read_file((*dir_) / "server.log");
  }

  static std::vector<std::string> common(const std::string& tasks, const std::string& out) {
    // The model's whole context: the server does not left-truncate generation prompts.
    return {"eval", "--tasks",    tasks, "--limit",  "8", "--max-length",
            "128",  "--progress", "off", "--output", out};
  }
  static testing::ProcResult run_local(const std::string& tasks, const std::string& out) {
    auto args = common(tasks, out);
    for (const auto& x :
         {std::string("--model"), ref_ + "/model", std::string("--threads"), std::string("1")})
      args.push_back(x);
    return run_reef(args);
  }
  static testing::ProcResult run_endpoint(const std::string& tasks, const std::string& out) {
    auto args = common(tasks, out);
    for (const auto& x :
         {std::string("--endpoint"), url_, std::string("--tokenizer"), ref_ + "/model"})
      args.push_back(x);
    return run_reef(args);
  }

  void endpoint_equals_local();
  void judge_scores_through_chat();

  static std::string ref_, url_;
  static testing::ScratchDir* dir_;
  static int server_pid_;
};

std::string EvalCli::ref_, EvalCli::url_;
testing::ScratchDir* EvalCli::dir_ = nullptr;
int EvalCli::server_pid_ = -1;

// Both checks share one test so that the server (about 20 s to start) starts once.
TEST_F(EvalCli, EndpointEqualsLocalAndJudgeScoresThroughChat) {
  endpoint_equals_local();
  judge_scores_through_chat();
}

void EvalCli::endpoint_equals_local() {
  SCOPED_TRACE("endpoint equals local");
  testing::ScratchDir tmp;
  const std::string tasks =
      "arithmetic,copy," + ref_ + "/tasks/tiny_mc.yaml," + ref_ + "/tasks/tiny_ppl.yaml";
  auto local = run_local(tasks, tmp / "local");
  ASSERT_EQ(local.exit_code, 0) << local.output;
  auto remote = run_endpoint(tasks, tmp / "remote");
  ASSERT_EQ(remote.exit_code, 0) << remote.output << read_file((*dir_) / "server.log");
  auto a = json::parse(read_file(tmp / "local/results.json"))["results"];
  auto b = json::parse(read_file(tmp / "remote/results.json"))["results"];
  for (const char* t : {"arithmetic", "tiny_mc"}) {
    EXPECT_EQ(a[t]["acc,none"], b[t]["acc,none"]) << t;
    EXPECT_EQ(a[t]["acc_norm,none"], b[t]["acc_norm,none"]) << t;
    auto la = read_jsonl(tmp / ("local/samples_" + std::string(t) + ".jsonl"));
    auto lb = read_jsonl(tmp / ("remote/samples_" + std::string(t) + ".jsonl"));
    ASSERT_EQ(la.size(), 8u);
    ASSERT_EQ(lb.size(), 8u);
    for (size_t i = 0; i < la.size(); ++i)
      for (size_t c = 0; c < la[i]["loglikelihoods"].size(); ++c)
        EXPECT_NEAR(la[i]["loglikelihoods"][c].get<double>(),
                    lb[i]["loglikelihoods"][c].get<double>(), 1e-4)
            << t << i;
  }
  for (const char* m : {"word_perplexity,none", "byte_perplexity,none", "bits_per_byte,none"}) {
    const double x = a["tiny_ppl"][m].get<double>(), y = b["tiny_ppl"][m].get<double>();
    EXPECT_NEAR(x, y, 1e-4 * std::fabs(x)) << m;
  }
  EXPECT_EQ(a["copy"]["exact_match,none"], b["copy"]["exact_match,none"]);
  auto ga = read_jsonl(tmp / "local/samples_copy.jsonl"),
       gb = read_jsonl(tmp / "remote/samples_copy.jsonl");
  ASSERT_EQ(ga.size(), gb.size());
  for (size_t i = 0; i < ga.size(); ++i) {
    EXPECT_EQ(ga[i]["prompt"], gb[i]["prompt"]);
    EXPECT_EQ(ga[i]["prediction"], gb[i]["prediction"]) << i;
  }
  // The built-in tasks' documents and layout.
  EXPECT_EQ(ga[0]["prompt"].get<std::string>().rfind("Copy: ", 0), 0u);
  EXPECT_TRUE(path_exists(tmp / "local/results.md"));
  EXPECT_NE(local.output.find("|arithmetic|1|none|0|acc|"), std::string::npos) << local.output;
}

void EvalCli::judge_scores_through_chat() {
  SCOPED_TRACE("judge");
  testing::ScratchDir tmp;
  const std::string yaml =
      "task: tiny_judge\n"
      "dataset_path: json\n"
      "dataset_kwargs:\n  data_files:\n    test: " +
      ref_ +
      "/data/gen.jsonl\n"
      "test_split: test\n"
      "output_type: judge\n"
      "doc_to_text: \"Q: {{question}}\\nA:\"\n"
      "doc_to_target: answer\n"
      "generation_kwargs:\n  until: [\"\\n\", \".\"]\n  max_gen_toks: 12\n"
      "judge:\n  rubric: \"Question: {{question}}\\nReference: {{target}}\\nAnswer: "
      "{{prediction|trim}}\\n"
      "Rate from 1 to 10 and end with 'Score: N'.\"\n  min_score: 1\n  max_score: 10\n";
  write_file_atomic(tmp / "judge.yaml", yaml);
  const std::string log = (*dir_) / "judge.jsonl";
  const size_t before = path_exists(log) ? read_jsonl(log).size() : 0;
  auto args = common(tmp / "judge.yaml", tmp / "out");
  for (const auto& x :
       {std::string("--model"), ref_ + "/model", std::string("--judge-endpoint"), url_})
    args.push_back(x);
  auto r = run_reef(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto verdicts = read_jsonl(log);
  ASSERT_EQ(verdicts.size(), before + 8);
  double sum = 0;
  for (size_t i = before; i < verdicts.size(); ++i) sum += verdicts[i]["score"].get<double>();
  auto res = json::parse(read_file(tmp / "out/results.json"));
  EXPECT_NEAR(res["results"]["tiny_judge"]["judge_score,none"].get<double>(), sum / 8, 1e-12);
  auto samples = read_jsonl(tmp / "out/samples_tiny_judge.jsonl");
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_NE(samples[i]["judge_prompt"].get<std::string>().find(
                  "Reference: " + samples[i]["target"].get<std::string>()),
              std::string::npos);
    EXPECT_EQ(samples[i]["metrics"]["judge_score,none"].get<double>(),
              verdicts[before + i]["score"].get<double>());
  }
}

TEST(EvalCliErrors, BadInputIsOneLineAndWritesNothing) {
  testing::ScratchDir tmp;
  const std::string model =
      testing::cached_python_output(testing::source_dir() + "/tests/reference/eval_reference.py",
                                    {"make"}) +
      "/model";
  auto run_local = [&](const std::string& tasks, const std::string& out) {
    return run_reef(
        {"eval", "--model", model, "--tasks", tasks, "--progress", "off", "--output", out});
  };
  auto r = run_local("no_such_task", tmp / "out");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("'no_such_task' is not a built-in task"), std::string::npos) << r.output;
  EXPECT_FALSE(path_exists(tmp / "out"));
  write_file_atomic(
      tmp / "bad.yaml",
      "task: bad\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: x.jsonl\n"
      "test_split: test\ndoc_to_txt: \"{{q}}\"\n");
  r = run_local(tmp / "bad.yaml", tmp / "out");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown task key 'doc_to_txt'"), std::string::npos) << r.output;
  EXPECT_FALSE(path_exists(tmp / "out"));
  r = run_reef({"eval", "--tasks", "arithmetic", "--output", tmp / "out"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("exactly one of --model DIR and --endpoint URL"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace reef
