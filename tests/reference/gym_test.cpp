// The `gym` reward (align/gym_environment.h) against a NeMo Gym resources server speaking the
// protocol (tests/reference/gym_server.py: /seed_session with a session cookie, /verify taking a
// BaseVerifyRequest and answering it with "reward", here the exact match of the response's
// output_text with the task's expected_answer). The same rollouts scored by `gym` and by the
// built-in exact_match give the same rewards, with one seed_session and one verify each; a
// server that answers 500 or sleeps past grpo.env_timeout_s gives NaN after exactly
// 1 + grpo.env_retries tries, in bounded time; so does a port where nothing listens.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "reef/align/environment.h"
#include "reef/base/files.h"
#include "testing/serve_process.h"
#include "testing/testing.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

// gym_server.py in the background on a free port, stopped at destruction.
class GymServer {
 public:
  explicit GymServer(const std::vector<std::string>& args = {}) {
    log_ = dir_ / "gym.log";
    std::vector<std::string> argv = {testing::python_bin(),
                                     testing::source_dir() + "/tests/reference/gym_server.py"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = testing::spawn_process(argv, testing::source_dir(), log_);
    url_ =
        testing::wait_for_log(&pid_, log_, std::regex(R"(listening on (http://127\.0\.0\.1:\d+))"),
                              "gym_server.py", 30)[1];
  }
  ~GymServer() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    testing::wait_process(pid_);
  }
  const std::string& url() const { return url_; }
  // The server's call counts, {"seed_session": n, "verify": n}.
  ojson stats() const {
    httplib::Client client(url_);
    auto res = client.Get("/stats");
    if (!res || res->status != 200) throw std::runtime_error("GET /stats failed");
    return ojson::parse(res->body);
  }

 private:
  testing::ScratchDir dir_;
  std::string log_, url_;
  int pid_ = -1;
};

Rollout rollout(const std::string& completion, const std::string& expected) {
  Rollout r;
  r.prompt = "<|user|>What is it?<|assistant|>";
  r.completion = completion;
  r.metadata = {{"expected_answer", expected}, {"id", 7}};
  return r;
}

std::vector<Rollout> sample_rollouts() {
  std::vector<Rollout> rs = {
      rollout("42", "42"),
      rollout("  42\n", "42"),
      rollout("41", "42"),
      rollout("Paris", " Paris "),
      rollout("paris", "Paris"),
      rollout("", "x"),
      rollout("", ""),
      rollout("a\nb", "a\nb"),
      rollout("a b", "a\nb"),
      rollout("naïve café", "naïve café"),
      rollout("{\"k\": [1]}", "{\"k\": [1]}"),
      rollout("42 is it", "42"),
  };
  // Prompts given as messages and a truncated completion go through the same protocol.
  rs[0].messages = ojson::array({{{"role", "system"}, {"content", "Answer with a number."}},
                                 {{"role", "user"}, {"content", "6 x 7?"}}});
  rs[2].truncated = true;
  return rs;
}

bool all_nan(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isnan(x)) return false;
  return true;
}

TEST(GymReference, GymRewardsEqualExactMatchOnTheSameRollouts) {
  GymServer server;
  GrpoConfig cfg;
  cfg.gym_url = server.url();
  cfg.answer_field = "expected_answer";
  cfg.env_timeout_s = 10;
  const auto rollouts = sample_rollouts();
  const std::vector<double> gym = make_environment("gym", cfg)->score(rollouts);
  const std::vector<double> exact = make_environment("exact_match", cfg)->score(rollouts);
  const std::vector<double> want = {1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0};
  EXPECT_EQ(gym, want);
  EXPECT_EQ(exact, want);
  const ojson stats = server.stats();
  EXPECT_EQ(stats["seed_session"], rollouts.size());  // no retries were needed
  EXPECT_EQ(stats["verify"], rollouts.size());

  // As one reward of a set: its weight applies, and the per-environment rewards are the server's.
  cfg.rewards = {"gym:2"};
  Rewards r = RewardSet(cfg).score(rollouts);
  ASSERT_EQ(r.per_environment.size(), 1u);
  EXPECT_EQ(r.per_environment[0].second, want);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(r.total[i], 2 * want[i]);
  EXPECT_EQ(r.dropped, 0);
}

// Runs `gym` over three rollouts against `url`; returns the rewards and the seconds it took.
std::pair<std::vector<double>, double> score_failing(const std::string& url, double timeout_s,
                                                     int64_t retries) {
  GrpoConfig cfg;
  cfg.gym_url = url;
  cfg.env_timeout_s = timeout_s;
  cfg.env_retries = retries;
  auto env = make_environment("gym", cfg);
  const auto start = std::chrono::steady_clock::now();
  auto rewards = env->score({rollout("1", "1"), rollout("2", "2"), rollout("3", "4")});
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {rewards, took};
}

TEST(GymReference, AServerErrorGivesNanAfterTheRetries) {
  GymServer server({"--mode", "error"});
  auto [rewards, took] = score_failing(server.url(), 5, 2);
  EXPECT_EQ(rewards.size(), 3u);
  EXPECT_TRUE(all_nan(rewards));
  EXPECT_LT(took, 30.0);  // a guard against hanging, not a timing
  const ojson stats = server.stats();
  EXPECT_EQ(stats["seed_session"], 3 * 3);  // 1 + 2 retries per rollout
  EXPECT_EQ(stats["verify"], 0);            // a session that never started is not verified

  GymServer verify_fails({"--mode", "verify_error"});
  auto [rewards2, took2] = score_failing(verify_fails.url(), 5, 1);
  EXPECT_TRUE(all_nan(rewards2));
  EXPECT_EQ(verify_fails.stats()["seed_session"], 3);
  EXPECT_EQ(verify_fails.stats()["verify"], 3 * 2);
}

TEST(GymReference, AServerPastTheTimeoutGivesNanInBoundedTime) {
  GymServer server({"--mode", "slow", "--sleep", "30"});
  auto [rewards, took] = score_failing(server.url(), 0.5, 1);
  EXPECT_TRUE(all_nan(rewards));
  EXPECT_LT(took, 20.0);  // far below the server's 30 s sleep: the client gave up
  EXPECT_EQ(server.stats()["seed_session"], 3 * 2);
}

TEST(GymReference, NothingListeningGivesNan) {
  std::string url;
  {
    GymServer gone;
    url = gone.url();
  }  // stopped: its port now refuses connections
  auto [rewards, took] = score_failing(url, 2, 1);
  EXPECT_TRUE(all_nan(rewards));
  EXPECT_LT(took, 20.0);
}

}  // namespace
}  // namespace reef
