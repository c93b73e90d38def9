// `reef align rm` and `reef score` against trl and transformers (tests/reference/rm_reference.py):
// the tiny random fp32 Llama of dpo_reference.py as a LlamaForSequenceClassification made by
// transformers, 8 preference pairs per file, every pair in each step's batch. The loss and
// RewardTrainer's metrics (accuracy, margin, mean_reward) equal trl's at step 1 within 1e-5 and
// over five AdamW steps within 1e-4, for standard strings, conversations, rows with a margin,
// and center_rewards_coefficient; `reef score` equals transformers' scores of the same folder,
// and a reward model Reef trained from a language model (a new score head) is a folder that
// transformers' AutoModelForSequenceClassification loads with the scores Reef gives.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reef/base/files.h"
#include "testing/testing.h"
#include "trl_parity.h"

namespace reef {
namespace {

const std::vector<std::string> kMetrics = {"loss", "accuracy", "margin", "mean_reward"};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

bool near(double a, double b, double tol) {
  return std::fabs(a - b) <= tol * std::max(1.0, std::fabs(b));
}

// Scores as `reef score` prints them, in row order: {chosen..., rejected...} or {score...}.
struct Scores {
  std::vector<double> chosen, rejected, single;
};

Scores parse_scores(const std::string& jsonl) {
  Scores s;
  for (const auto& line : lines(jsonl)) {
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line);
    if (j.contains("score")) {
      s.single.push_back(j["score"].get<double>());
    } else {
      s.chosen.push_back(j.at("chosen_score").get<double>());
      s.rejected.push_back(j.at("rejected_score").get<double>());
    }
  }
  return s;
}

class RmReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    script_ = testing::source_dir() + "/tests/reference/rm_reference.py";
    dir_ = testing::cached_python_output(script_, {"make"});
    ref_ = testing::cached_python_output(script_, {"suite", dir_});
    trl_ = nlohmann::json::parse(read_file(ref_ + "/train.json"));
  }

  static testing::ProcResult train(const std::string& run, const std::string& data,
                                   const std::vector<std::string>& extra, int nproc = 1,
                                   const std::string& model = "rm_model") {
    std::vector<std::string> args = {
        "align",          "rm",
        "--model",        dir_ + "/" + model,
        "run.dir=" + run, "data.train_files=[" + dir_ + "/" + data + ".jsonl]"};
    const auto common = testing::trl_parity_overrides();
    args.insert(args.end(), common.begin(), common.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::run_reef(nproc > 1 ? testing::launch_args(nproc, args) : args);
  }

  static void expect_equal_to_trl(const std::string& run, const std::string& name) {
    SCOPED_TRACE(name);
    const auto& steps = trl_.at(name);
    ASSERT_EQ(steps.size(), 5u);
    for (const auto& key : kMetrics) {
      auto reef = testing::metric_by_step(run + "/metrics.jsonl", key);
      ASSERT_EQ(reef.size(), 5u) << key;
      for (int64_t s = 1; s <= 5; ++s) {
        const double want = steps[static_cast<size_t>(s - 1)].at(key).get<double>();
        EXPECT_TRUE(near(reef.at(s), want, s == 1 ? 1e-5 : 1e-4))
            << key << " at step " << s << ": reef " << reef.at(s) << ", trl " << want;
      }
    }
  }

  static Scores score(const std::string& model, const std::string& input) {
    auto r = testing::run_reef({"score", "--model", model, "--input", input, "--batch-size", "3"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return parse_scores(r.output);
  }

  static void expect_scores(const Scores& got, const nlohmann::json& want) {
    ASSERT_EQ(got.chosen.size(), want["chosen"].size());
    for (size_t i = 0; i < got.chosen.size(); ++i) {
      EXPECT_TRUE(near(got.chosen[i], want["chosen"][i].get<double>(), 1e-5))
          << i << ": reef " << got.chosen[i] << ", transformers " << want["chosen"][i];
      EXPECT_TRUE(near(got.rejected[i], want["rejected"][i].get<double>(), 1e-5))
          << i << ": reef " << got.rejected[i] << ", transformers " << want["rejected"][i];
    }
  }

  static std::string script_, dir_, ref_;
  static nlohmann::json trl_;
};

std::string RmReference::script_, RmReference::dir_, RmReference::ref_;
nlohmann::json RmReference::trl_;

TEST_F(RmReference, LossAndMetricsEqualRewardTrainer) {
  testing::ScratchDir tmp;
  for (const auto& [name, data, extra] :
       std::vector<std::tuple<std::string, std::string, std::vector<std::string>>>{
           {"standard", "standard", {}},
           {"conversational", "conversational", {}},
           {"margin", "margin", {}},
           {"center", "standard", {"rm.center_rewards_coefficient=0.05"}}}) {
    auto r = train(tmp / name, data, extra);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    expect_equal_to_trl(tmp / name, name);
  }
}

TEST_F(RmReference, ScoresEqualTransformers) {
  for (const std::string data : {"standard", "conversational"}) {
    SCOPED_TRACE(data);
    auto want = nlohmann::json::parse(read_file(ref_ + "/scores_" + data + ".json"));
    expect_scores(score(dir_ + "/rm_model", dir_ + "/" + data + ".jsonl"), want);
  }
  // One sequence per row scores as that sequence in a pair: {"text": prompt + chosen} as the
  // standard pair's chosen answer, {"messages": prompt + chosen} as the conversational one's.
  testing::ScratchDir tmp;
  std::string texts, chats;
  for (const auto& line : lines(read_file(dir_ + "/standard.jsonl"))) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    texts +=
        nlohmann::json{{"text", j["prompt"].get<std::string>() + j["chosen"].get<std::string>()}}
            .dump() +
        "\n";
  }
  for (const auto& line : lines(read_file(dir_ + "/conversational.jsonl"))) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    nlohmann::json m = j["prompt"];
    for (const auto& x : j["chosen"]) m.push_back(x);
    chats += nlohmann::json{{"messages", m}}.dump() + "\n";
  }
  write_file_atomic(tmp / "texts.jsonl", texts);
  write_file_atomic(tmp / "chats.jsonl", chats);
  for (const auto& [file, data] : std::vector<std::pair<std::string, std::string>>{
           {tmp / "texts.jsonl", "standard"}, {tmp / "chats.jsonl", "conversational"}}) {
    auto want = nlohmann::json::parse(read_file(ref_ + "/scores_" + data + ".json"));
    Scores s = score(dir_ + "/rm_model", file);
    ASSERT_EQ(s.single.size(), want["chosen"].size()) << file;
    for (size_t i = 0; i < s.single.size(); ++i)
      EXPECT_TRUE(near(s.single[i], want["chosen"][i].get<double>(), 1e-5)) << file << " " << i;
  }
  // --out writes the same lines, and the log gives the pairs' accuracy.
  auto r =
      testing::run_reef({"score", "--model", dir_ + "/rm_model", "--input",
                         dir_ + "/standard.jsonl", "--out", tmp / "s.jsonl", "--batch-size", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(parse_scores(read_file(tmp / "s.jsonl")).chosen,
            score(dir_ + "/rm_model", dir_ + "/standard.jsonl").chosen);
  EXPECT_NE(r.output.find("preference accuracy"), std::string::npos) << r.output;
}

// From a language model folder: the body's weights and a new score head; the saved checkpoint
// is a LlamaForSequenceClassification that transformers loads with Reef's scores.
TEST_F(RmReference, RewardModelFromALanguageModelLoadsInTransformers) {
  testing::ScratchDir tmp;
  auto r = train(tmp / "rm", "standard", {"train.max_steps=3", "optim.lr=0.05"}, 1, "model");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("new score head"), std::string::npos) << r.output;
  const std::string ckpt = tmp / "rm/checkpoints/step_3";
  auto cfg = nlohmann::json::parse(read_file(ckpt + "/config.json"));
  EXPECT_EQ(cfg["architectures"][0], "LlamaForSequenceClassification");
  EXPECT_EQ(cfg["id2label"].size(), 1u);
  EXPECT_TRUE(cfg["pad_token_id"].is_number_integer());
  auto want = testing::run_python({script_, "scores", ckpt, dir_ + "/standard.jsonl"});
  ASSERT_EQ(want.exit_code, 0) << want.output;
  const std::string js = want.output.substr(want.output.rfind("{\"chosen\""));
  expect_scores(score(tmp / "rm", dir_ + "/standard.jsonl"), nlohmann::json::parse(js));
  // A classifier is not a language model for generate / serve / export, and score needs one.
  auto g = testing::run_reef({"generate", "--model", tmp / "rm", "-p", "hi"});
  EXPECT_EQ(g.exit_code, 2) << g.output;
  EXPECT_NE(g.output.find("sequence classifier"), std::string::npos) << g.output;
  auto s =
      testing::run_reef({"score", "--model", dir_ + "/model", "--input", dir_ + "/standard.jsonl"});
  EXPECT_EQ(s.exit_code, 2) << s.output;
  EXPECT_NE(s.output.find("not a reward model"), std::string::npos) << s.output;
}

TEST_F(RmReference, ParallelLayoutsAndResumeEqualOneProcess) {
  testing::ScratchDir tmp;
  const std::vector<std::string> three = {"train.max_steps=3"};
  auto one = train(tmp / "one", "standard", three);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  for (const auto& [name, layout] : std::vector<std::pair<std::string, std::string>>{
           {"dp", "parallel.dp=2"}, {"tp", "parallel.tp=2"}, {"zero3", "parallel.zero=3"}}) {
    auto args = three;
    args.push_back(layout);
    auto two = train(tmp / name, "standard", args, 2);
    ASSERT_EQ(two.exit_code, 0) << two.output;
    for (const auto& m : kMetrics) {
      auto a = testing::metric_by_step(tmp / "one/metrics.jsonl", m);
      auto b = testing::metric_by_step(tmp / name + "/metrics.jsonl", m);
      ASSERT_EQ(a.size(), 3u) << name << " " << m;
      for (const auto& [step, v] : a)
        EXPECT_TRUE(near(b.at(step), v, 1e-5)) << name << " " << m << " at " << step;
    }
  }
  // Killed after step 2 (a checkpoint), resumed: step 3 as the uninterrupted run.
  auto first = train(tmp / "resumed", "standard", {"train.max_steps=2", "checkpoint.every=2"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto second = train(tmp / "resumed", "standard", {"train.max_steps=3", "--resume"});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  auto whole = testing::metric_by_step(tmp / "one/metrics.jsonl", "loss");
  auto resumed = testing::metric_by_step(tmp / "resumed/metrics.jsonl", "loss");
  EXPECT_NEAR(resumed.at(3), whole.at(3), 1e-6);
}

TEST_F(RmReference, BadInputIsAOneLineError) {
  testing::ScratchDir tmp;
  write_file_atomic(tmp / "bad.jsonl",
                    read_file(dir_ + "/standard.jsonl") +
                        "{\"prompt\": \"Q\", \"chosen\": \" a\", \"rejected\": \" b\", "
                        "\"margin\": \"big\"}\n");
  auto r = train(tmp / "r", "standard", {"data.train_files=[" + (tmp / "bad.jsonl") + "]"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(tmp / "bad.jsonl:9: field \"margin\""), std::string::npos) << r.output;
  EXPECT_FALSE(path_exists(tmp / "r/checkpoints"));
  auto pp = train(tmp / "p", "standard", {"parallel.pp=2"});
  EXPECT_EQ(pp.exit_code, 2) << pp.output;
  EXPECT_NE(pp.output.find("parallel.pp=2"), std::string::npos) << pp.output;
  auto lora = train(tmp / "l", "standard", {"peft.method=lora"});
  EXPECT_EQ(lora.exit_code, 2) << lora.output;
  EXPECT_NE(lora.output.find("peft.method=lora"), std::string::npos) << lora.output;
  auto c = train(tmp / "c", "standard", {"rm.center_rewards_coefficient=-1"});
  EXPECT_EQ(c.exit_code, 2) << c.output;
  EXPECT_NE(c.output.find("rm.center_rewards_coefficient"), std::string::npos) << c.output;
  write_file_atomic(tmp / "rows.jsonl", "{\"text\": \"hi\"}\n{\"question\": \"x\"}\n");
  auto s =
      testing::run_reef({"score", "--model", dir_ + "/rm_model", "--input", tmp / "rows.jsonl"});
  EXPECT_EQ(s.exit_code, 2) << s.output;
  EXPECT_NE(s.output.find(tmp / "rows.jsonl:2:"), std::string::npos) << s.output;
}

}  // namespace
}  // namespace reef
