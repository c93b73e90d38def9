// Tests for align/environment.h: each built-in environment's rewards (exact_match with and
// without answer_regex, math, format, json with a metadata schema and a schema file), NaN where a
// rollout cannot be scored, RewardSet's weighted nansum and dropped count, and bad settings as
// usage errors that name their key. The gym client is tested against a real server in
// tests/reference/gym_test.cpp.
#include "reef/align/environment.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "reef/align/gym_environment.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

Rollout rollout(const std::string& completion, ojson metadata = nullptr) {
  Rollout r;
  r.prompt = "Q?";
  r.completion = completion;
  r.metadata = std::move(metadata);
  return r;
}

// Rewards of `name` for (completion, metadata) pairs.
std::vector<double> rewards(const std::string& name, const GrpoConfig& cfg,
                            const std::vector<Rollout>& rollouts) {
  auto env = make_environment(name, cfg);
  EXPECT_EQ(env->name(), name);
  return env->score(rollouts);
}

// Compares reward vectors where NaN equals NaN.
void expect_rewards(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i]))
      EXPECT_TRUE(std::isnan(got[i])) << "rollout " << i << ": " << got[i];
    else
      EXPECT_EQ(got[i], want[i]) << "rollout " << i;
  }
}

// The message of the usage error `fn` throws (a test failure when it throws none).
std::string usage_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(ExactMatch, ComparesTheTrimmedCompletionWithTheAnswer) {
  GrpoConfig cfg;
  expect_rewards(rewards("exact_match", cfg,
                         {rollout("  42 \n", {{"answer", "42"}}), rollout("41", {{"answer", "42"}}),
                          rollout("42", {{"answer", " 42\n"}}), rollout("42", {{"answer", 42}}),
                          rollout("2.5", {{"answer", 2.5}}), rollout("42", {{"other", "42"}}),
                          rollout("42", {{"answer", nullptr}}), rollout("42")}),
                 {1, 0, 1, 1, 1, kNaN, kNaN, kNaN});
  cfg.answer_field = "expected_answer";
  expect_rewards(
      rewards("exact_match", cfg,
              {rollout("x", {{"expected_answer", "x"}}), rollout("x", {{"answer", "x"}})}),
      {1, kNaN});
}

TEST(ExactMatch, AnswerRegexTakesTheFirstGroupOfTheLastMatch) {
  GrpoConfig cfg;
  cfg.answer_regex = R"(Answer:\s*(\w+))";
  const std::string text = "Answer: foo\nHmm, no.\nAnswer:  bar\n";
  expect_rewards(
      rewards("exact_match", cfg,
              {rollout(text, {{"answer", "bar"}}), rollout(text, {{"answer", "foo"}}),
               rollout("no answer given", {{"answer", "bar"}}), rollout(text, ojson::object())}),
      {1, 0, 0, kNaN});
  cfg.answer_regex = R"(\d+)";  // no group: the whole match
  expect_rewards(rewards("exact_match", cfg, {rollout("1 and then 22.", {{"answer", "22"}})}), {1});
  cfg.answer_regex = "(unclosed";
  const std::string msg = usage_message([&] { make_environment("exact_match", cfg); });
  EXPECT_EQ(msg.rfind("grpo.answer_regex: invalid regex \"(unclosed\"", 0), 0u) << msg;
}

TEST(Math, FindsAndComparesTheFinalAnswer) {
  GrpoConfig cfg;
  auto m = [](const char* answer) { return ojson{{"answer", answer}}; };
  expect_rewards(
      rewards("math", cfg,
              {
                  rollout("so x = \\boxed{\\frac{1}{2}}", m("0.5")),  // boxed, \frac
                  rollout("so x = \\boxed{\\frac{1}{3}}", m("0.5")),  // wrong
                  rollout("3 + 4 = 7\n#### 7", m("7")),               // ####
                  rollout("first 3, then 8 apples", m("8")),          // last number
                  rollout("first 8, then 3 apples", m("8")),          // last number, wrong
                  rollout("it is 3/4.", m("0.75")),                   // fraction
                  rollout("total: $1,234,567", m("1234567")),         // commas, dollar
                  rollout("a rise of 25%", m("25")),                  // percent
                  rollout("it fell to -12 degrees", m("-12")),        // negative
                  rollout("\\boxed{(1, 2)}", m("(1,2)")),             // text fallback
                  rollout("\\boxed{Paris}", m("paris")),              // text, case
                  rollout("no idea", m("5")),                         // nothing found
                  rollout("5", ojson{{"answer", 5}}),                 // number answer
                  rollout("#### 72", m("She sold 48 + 24 = 72 clips.\n#### 72")),  // a solution
                  rollout("\\boxed{5}", ojson::object()),                          // no answer
              }),
      {1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1, kNaN});
}

TEST(Format, TheRegexMustMatchTheWholeCompletion) {
  GrpoConfig cfg;
  cfg.format_regex = R"(<think>[\s\S]*</think>\s*\d+)";
  expect_rewards(rewards("format", cfg,
                         {rollout("<think>a\nb</think>\n42"), rollout("<think>a</think> 42 or so"),
                          rollout("so <think>a</think> 42"), rollout("42")}),
                 {1, 0, 0, 0});
  // ECMAScript's "." stops at a newline: this is why users write [\s\S].
  cfg.format_regex = R"(<think>.*</think>\s*\d+)";
  expect_rewards(
      rewards("format", cfg, {rollout("<think>a\nb</think> 1"), rollout("<think>a</think> 1")}),
      {0, 1});

  cfg.format_regex = "";
  std::string msg = usage_message([&] { make_environment("format", cfg); });
  EXPECT_EQ(msg.rfind("grpo.format_regex: required by the format reward", 0), 0u) << msg;
  cfg.format_regex = "[a-";
  msg = usage_message([&] { make_environment("format", cfg); });
  EXPECT_EQ(msg.rfind("grpo.format_regex: invalid regex", 0), 0u) << msg;
}

TEST(Json, AnyValidJsonWithoutASchema) {
  GrpoConfig cfg;
  expect_rewards(rewards("json", cfg,
                         {rollout(R"( {"a": 1} )"), rollout("```json\n{\"a\": [1, 2]}\n```"),
                          rollout("```\n[true]\n```"), rollout("42"), rollout("not json"),
                          rollout(R"({"a": 1} and some words)"), rollout(R"({"a": )")}),
                 {1, 1, 1, 1, 0, 0, 0});
}

TEST(Json, MetadataSchemaWinsOverTheFile) {
  testing::ScratchDir dir;
  const std::string file = dir / "schema.json";
  write_file_atomic(file, R"({"type": "object", "required": ["name"],
                              "properties": {"name": {"type": "string", "minLength": 1}}})");
  GrpoConfig cfg;
  cfg.json_schema = file;
  const ojson ints = {{"schema", {{"type", "array"}, {"items", {{"type", "integer"}}}}}};
  const ojson as_text = {{"schema", R"({"type": "array", "maxItems": 1})"}};
  const ojson broken = {{"schema", {{"type", "strin"}}}};
  expect_rewards(rewards("json", cfg,
                         {rollout(R"({"name": "Ada"})"),        // the file's schema
                          rollout(R"({"name": ""})"),           // minLength 1
                          rollout(R"({"age": 3})"),             // required
                          rollout("[1, 2, 3]", ints),           // the row's schema
                          rollout(R"({"name": "Ada"})", ints),  // ... which says array
                          rollout("[1, 2.5]", ints),            // integer items
                          rollout("[1]", as_text),              // a schema given as text
                          rollout("[1, 2]", as_text),           // maxItems 1
                          rollout("[1]", broken)}),             // cannot be scored
                 {1, 0, 0, 1, 0, 0, 1, 0, kNaN});
}

TEST(Json, ABadSchemaFileIsAUsageErrorNamingTheKey) {
  testing::ScratchDir dir;
  GrpoConfig cfg;
  cfg.json_schema = dir / "missing.json";
  std::string msg = usage_message([&] { make_environment("json", cfg); });
  EXPECT_EQ(msg.rfind("grpo.json_schema: cannot open", 0), 0u) << msg;
  cfg.json_schema = dir / "bad.json";
  write_file_atomic(cfg.json_schema, "{\"type\": ");
  msg = usage_message([&] { make_environment("json", cfg); });
  EXPECT_EQ(msg.rfind("grpo.json_schema: " + cfg.json_schema + " is not JSON", 0), 0u) << msg;
  write_file_atomic(cfg.json_schema, R"({"properties": {"a": {"minimum": "zero"}}})");
  msg = usage_message([&] { make_environment("json", cfg); });
  EXPECT_NE(msg.find("grpo.json_schema: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("/properties/a/minimum: expected a number"), std::string::npos) << msg;
}

TEST(RewardSet, WeightedNansumAndAllNanDropped) {
  GrpoConfig cfg;
  cfg.rewards = {"exact_match:0.5", "format", "math: 2"};
  cfg.format_regex = R"(\d+)";
  RewardSet set(cfg);
  EXPECT_EQ(set.names(), (std::vector<std::string>{"exact_match", "format", "math"}));
  EXPECT_EQ(set.weights(), (std::vector<double>{0.5, 1.0, 2.0}));
  Rewards r = set.score({rollout("7", {{"answer", "7"}}), rollout("7", {{"answer", "8"}}),
                         rollout("seven", {{"answer", "7"}}), rollout("7")});
  // exact 1/0/0/NaN, format 1/1/0/1, math 1/0/0/NaN.
  expect_rewards(r.total, {0.5 + 1 + 2, 1, 0, 1});
  EXPECT_EQ(r.dropped, 0);
  ASSERT_EQ(r.per_environment.size(), 3u);
  EXPECT_EQ(r.per_environment[0].first, "exact_match");
  expect_rewards(r.per_environment[0].second, {1, 0, 0, kNaN});
  EXPECT_EQ(r.per_environment[1].first, "format");
  expect_rewards(r.per_environment[1].second, {1, 1, 0, 1});
  EXPECT_EQ(r.per_environment[2].first, "math");
  expect_rewards(r.per_environment[2].second, {1, 0, 0, kNaN});

  // Every environment NaN: the total is NaN and the rollout dropped.
  cfg.rewards = {"exact_match", "math:-1"};
  RewardSet both(cfg);
  Rewards d =
      both.score({rollout("7"), rollout("7", {{"answer", "7"}}), rollout("x", ojson::object())});
  expect_rewards(d.total, {kNaN, 1 - 1, kNaN});
  EXPECT_EQ(d.dropped, 2);
}

TEST(RewardSet, BadSettingsAreUsageErrorsNamingTheKey) {
  GrpoConfig cfg;
  auto message = [&](std::vector<std::string> rewards) {
    cfg.rewards = std::move(rewards);
    return usage_message([&] { RewardSet set(cfg); });
  };
  EXPECT_EQ(message({"exact_match", "foo"}),
            "grpo.rewards: unknown environment \"foo\" (exact_match, math, format, json, gym)");
  EXPECT_EQ(message({"math:abc"}).rfind("grpo.rewards: \"math:abc\" has the weight \"abc\"", 0),
            0u);
  EXPECT_EQ(message({"math:"}).rfind("grpo.rewards: \"math:\" has the weight \"\"", 0), 0u);
  EXPECT_EQ(message({"math:1.5x"}).rfind("grpo.rewards:", 0), 0u);
  EXPECT_EQ(message({"math:inf"}).rfind("grpo.rewards:", 0), 0u);
  EXPECT_EQ(message({"math", "math:2"}),
            "grpo.rewards: \"math\" is listed twice (give it one weight)");
  EXPECT_EQ(message({}).rfind("grpo.rewards: at least one environment", 0), 0u);
  EXPECT_EQ(message({"format"}).rfind("grpo.format_regex:", 0), 0u);
  EXPECT_EQ(message({"gym"}).rfind("grpo.gym_url: required by the gym reward", 0), 0u);
  cfg.gym_url = "ftp://example.com";
  EXPECT_EQ(message({"gym"}),
            "grpo.gym_url: 'ftp://example.com' is not an http:// or https:// URL");
}

TEST(Gym, RequestBodiesFollowTheGymProtocol) {
  Rollout r = rollout("  the answer\n",
                      {{"expected_answer", "42"},
                       {"responses_create_params", {{"input", "old"}, {"tools", ojson::array()}}}});
  r.messages = ojson::array({{{"role", "system"}, {"content", "Be brief."}},
                             {{"role", "user"}, {"content", "What is 6 x 7?"}}});
  r.truncated = true;
  const ojson seed = GymEnvironment::seed_session_body(r);
  EXPECT_EQ(seed["expected_answer"], "42");
  const ojson& params = seed["responses_create_params"];
  EXPECT_EQ(params["tools"], ojson::array());  // the row's own params are kept ...
  ASSERT_EQ(params["input"].size(), 2u);       // ... with the input the model saw
  EXPECT_EQ(params["input"][1]["role"], "user");
  EXPECT_EQ(params["input"][1]["content"], "What is 6 x 7?");
  EXPECT_EQ(params["input"][1]["type"], "message");

  const ojson verify = GymEnvironment::verify_body(r);
  EXPECT_EQ(verify["expected_answer"], "42");
  EXPECT_EQ(verify["responses_create_params"], params);
  const ojson& resp = verify["response"];
  for (const char* key : {"id", "created_at", "model", "object", "output", "parallel_tool_calls",
                          "tool_choice", "tools"})
    EXPECT_TRUE(resp.contains(key)) << key;
  EXPECT_EQ(resp["object"], "response");
  EXPECT_EQ(resp["status"], "incomplete");
  ASSERT_EQ(resp["output"].size(), 1u);
  const ojson& msg = resp["output"][0];
  EXPECT_EQ(msg["type"], "message");
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["content"][0]["type"], "output_text");
  EXPECT_EQ(msg["content"][0]["text"], "  the answer\n");
  EXPECT_EQ(msg["content"][0]["annotations"], ojson::array());

  // A text prompt is one user message.
  const ojson plain = GymEnvironment::seed_session_body(rollout("x"));
  EXPECT_EQ(plain["responses_create_params"]["input"],
            ojson::array({{{"role", "user"}, {"content", "Q?"}, {"type", "message"}}}));
}

}  // namespace
}  // namespace reef
