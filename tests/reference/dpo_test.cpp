// `reef align dpo` against trl (tests/reference/dpo_reference.py): a tiny random fp32 Llama made
// by transformers, 8 preference pairs per file (standard strings, conversations, and the
// implicit-prompt form), every pair in each step's batch. For every loss type, the loss and
// TRL's reward and log-prob metrics at step 1 equal DPOTrainer's (simpo: CPOTrainer's) within
// 1e-5, and over five AdamW steps within 1e-4: the tokenization, the chosen/rejected masks, the
// per-sequence log-probs, the loss formulas and the reference all agree. The cached reference
// log-probs equal the base model's under transformers, for full and LoRA runs (the adapter is
// never part of the reference), a resume reads them from the cache, and bad rows are one-line
// errors naming file, line and field (or skipped and counted).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reef/base/files.h"
#include "testing/testing.h"
#include "trl_parity.h"

namespace reef {
namespace {

const std::vector<std::string> kMetrics = {
    "loss",         "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
    "logps/chosen", "logps/rejected"};

bool near(double a, double b, double tol) {
  return std::fabs(a - b) <= tol * std::max(1.0, std::fabs(b));
}

class DpoReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string script = testing::source_dir() + "/tests/reference/dpo_reference.py";
    dir_ = testing::cached_python_output(script, {"make"});
    ref_ = testing::cached_python_output(script, {"suite", dir_});
    trl_ = nlohmann::json::parse(read_file(ref_ + "/train.json"));
  }

  // Two ranks (reef launch) in `layout` give one process's metrics (defined below the tests'
  // helpers).
  static void expect_two_ranks_equal_one(const std::string& data,
                                         const std::vector<std::string>& layout);

  // reef align dpo on `data` (standard, conversational, implicit) into `run`.
  static testing::ProcResult align(const std::string& run, const std::string& data,
                                   const std::vector<std::string>& extra, int nproc = 1) {
    std::vector<std::string> args = {
        "align",          "dpo",
        "--model",        dir_ + "/model",
        "run.dir=" + run, "data.train_files=[" + dir_ + "/" + data + ".jsonl]"};
    const auto common = testing::trl_parity_overrides();
    args.insert(args.end(), common.begin(), common.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::run_reef(nproc > 1 ? testing::launch_args(nproc, args) : args);
  }

  // Reef's metrics by step against trl's records of job `name`.
  static void expect_equal_to_trl(const std::string& run, const std::string& name) {
    SCOPED_TRACE(name);
    const auto& steps = trl_.at(name);
    ASSERT_EQ(steps.size(), 5u);
    for (const auto& key : kMetrics) {
      auto reef = testing::metric_by_step(run + "/metrics.jsonl", key);
      ASSERT_EQ(reef.size(), 5u) << key;
      for (int64_t s = 1; s <= 5; ++s) {
        const double want = steps[static_cast<size_t>(s - 1)].at(key).get<double>();
        const double got = reef.at(s);
        // Step 1 of a reference-based loss: policy = reference, every reward is 0 up to
        // rounding, so whether chosen > rejected is a coin toss of the last bit.
        if (key == "rewards/accuracies" && s == 1 && name.find("simpo") == std::string::npos)
          continue;
        EXPECT_TRUE(near(got, want, s == 1 ? 1e-5 : 1e-4))
            << key << " at step " << s << ": reef " << got << ", trl " << want;
      }
    }
  }

  static std::vector<float> read_cache(const std::string& run, std::string* name = nullptr) {
    std::vector<std::string> files = list_dir(run + "/reference_logps");
    EXPECT_EQ(files.size(), 1u);
    if (files.empty()) return {};
    if (name) *name = files[0];
    const std::string data = read_file(run + "/reference_logps/" + files[0]);
    EXPECT_EQ(data.compare(0, 8, "REEFREF1"), 0);
    int64_t n = 0;
    std::memcpy(&n, data.data() + 8, sizeof(n));
    std::vector<float> v(static_cast<size_t>(2 * n));
    std::memcpy(v.data(), data.data() + 16, v.size() * sizeof(float));
    return v;  // chosen..., rejected...
  }

  static void expect_base_logps(const std::vector<float>& cache, const std::string& data) {
    auto want = nlohmann::json::parse(read_file(ref_ + "/logps_" + data + ".json"));
    const size_t n = want["chosen"].size();
    ASSERT_EQ(cache.size(), 2 * n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_TRUE(near(cache[i], want["chosen"][i].get<double>(), 1e-5)) << i;
      EXPECT_TRUE(near(cache[n + i], want["rejected"][i].get<double>(), 1e-5)) << i;
    }
  }

  static std::string dir_, ref_;
  static nlohmann::json trl_;
};

std::string DpoReference::dir_, DpoReference::ref_;
nlohmann::json DpoReference::trl_;

struct Case {
  const char* name;  // trl job: DATA_LOSS
  std::vector<std::string> overrides;
};

std::vector<Case> cases(const std::string& data) {
  return {{"sigmoid", {"dpo.loss_type=sigmoid"}},
          {"ipo", {"dpo.loss_type=ipo"}},
          {"hinge", {"dpo.loss_type=hinge"}},
          {"robust", {"dpo.loss_type=robust", "dpo.label_smoothing=0.1"}},
          {"simpo", {"dpo.loss_type=simpo", "dpo.beta=2.0", "dpo.simpo_gamma=0.5"}},
          {"sigmoid_rpo", {"dpo.loss_type=sigmoid", "dpo.rpo_alpha=0.5"}}};
  (void)data;
}

TEST_F(DpoReference, StandardPairsEqualTrl) {
  testing::ScratchDir tmp;
  for (const Case& c : cases("standard")) {
    const std::string run = tmp / c.name;
    auto r = align(run, "standard", c.overrides);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    expect_equal_to_trl(run, std::string("standard_") + c.name);
  }
  // The reference the losses used is the base model's under transformers.
  expect_base_logps(read_cache(tmp / "sigmoid"), "standard");
}

TEST_F(DpoReference, ConversationalPairsEqualTrl) {
  testing::ScratchDir tmp;
  for (const Case& c : cases("conversational")) {
    const std::string run = tmp / c.name;
    auto r = align(run, "conversational", c.overrides);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    expect_equal_to_trl(run, std::string("conversational_") + c.name);
  }
  expect_base_logps(read_cache(tmp / "sigmoid"), "conversational");
  // The implicit-prompt form: the shared leading messages are the prompt.
  auto r = align(tmp / "implicit", "implicit", {});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_equal_to_trl(tmp / "implicit", "implicit_sigmoid");
}

TEST_F(DpoReference, CachedReferenceIsReusedAndLoraReferenceIsTheBaseModel) {
  testing::ScratchDir tmp;
  auto full = align(tmp / "full", "standard", {});
  ASSERT_EQ(full.exit_code, 0) << full.output;
  EXPECT_NE(full.output.find("computing the reference"), std::string::npos) << full.output;
  std::string full_name;
  const std::vector<float> full_cache = read_cache(tmp / "full", &full_name);

  // Resume: 3 steps, then on to 5 from the checkpoint; the reference comes from the cache
  // (never recomputed, although the model now holds trained weights) and the losses are the
  // uninterrupted run's.
  auto first = align(tmp / "resumed", "standard", {"train.max_steps=3", "checkpoint.every=3"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto second = align(tmp / "resumed", "standard", {"--resume"});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("read from"), std::string::npos) << second.output;
  EXPECT_EQ(second.output.find("computing the reference"), std::string::npos) << second.output;
  auto whole = testing::metric_by_step(tmp / "full/metrics.jsonl", "loss");
  auto resumed = testing::metric_by_step(tmp / "resumed/metrics.jsonl", "loss");
  for (int64_t s : {4, 5}) EXPECT_NEAR(resumed.at(s), whole.at(s), 1e-6) << s;

  // LoRA: the reference is the base model (no adapter), the same numbers and the same key.
  auto lora = align(tmp / "lora", "standard",
                    {"peft.method=lora", "peft.target_modules=[all-linear]", "peft.lora_r=4",
                     "peft.lora_alpha=8", "train.max_steps=2"});
  ASSERT_EQ(lora.exit_code, 0) << lora.output;
  std::string lora_name;
  const std::vector<float> lora_cache = read_cache(tmp / "lora", &lora_name);
  EXPECT_EQ(lora_name, full_name);
  EXPECT_EQ(lora_cache, full_cache);
  expect_base_logps(lora_cache, "standard");
  // The adapter trains: rewards move away from 0 at step 2.
  auto margins = testing::metric_by_step(tmp / "lora/metrics.jsonl", "rewards/margins");
  ASSERT_EQ(margins.size(), 2u);
  EXPECT_GT(std::fabs(margins.at(2)), 1e-4);
}

// The validation pass: held-out pairs scored with the loss and TRL's metrics (eval_*). With the
// training file as the validation file, the pass after 4 steps sees the weights trl's step 5
// is computed on (every pair in each batch, no dropout), so its eval metrics are trl's step-5
// training metrics; the validation pairs' reference comes from the cache.
TEST_F(DpoReference, ValidationMetricsEqualTrlOnTheSameWeights) {
  testing::ScratchDir tmp;
  const std::string run = tmp / "eval";
  auto r = align(run, "standard",
                 {"train.max_steps=4", "train.eval_every=4",
                  "data.valid_files=[" + dir_ + "/standard.jsonl]"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("8 validation preference pairs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 4: val_loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("eval_rewards/accuracies"), std::string::npos) << r.output;
  const auto& want = trl_.at("standard_sigmoid").at(4);
  for (const auto& key : kMetrics) {
    auto got = testing::metric_by_step(run + "/metrics.jsonl", "eval_" + key);
    ASSERT_EQ(got.count(4), 1u) << key;
    EXPECT_TRUE(near(got.at(4), want.at(key).get<double>(), 1e-4))
        << key << ": reef " << got.at(4) << ", trl " << want.at(key).get<double>();
    EXPECT_EQ(got.count(0), 1u) << key;  // before the first step too
  }
  auto val = testing::metric_by_step(run + "/metrics.jsonl", "val_loss");
  auto eval_loss = testing::metric_by_step(run + "/metrics.jsonl", "eval_loss");
  EXPECT_EQ(val.at(4), eval_loss.at(4));
  // Step 0: policy = reference, DPO's loss is log 2.
  EXPECT_NEAR(val.at(0), std::log(2.0), 1e-5);

  // Without validation files, train.eval_every > 0 names the key.
  auto e = align(tmp / "e", "standard", {"train.eval_every=2"});
  EXPECT_EQ(e.exit_code, 2) << e.output;
  EXPECT_NE(e.output.find("data.valid_files"), std::string::npos) << e.output;
}

// Two ranks (reef launch) in a layout given by `layout` give one process's losses, metrics and
// validation metrics after 3 steps.
void DpoReference::expect_two_ranks_equal_one(const std::string& data,
                                              const std::vector<std::string>& layout) {
  testing::ScratchDir tmp;
  const std::vector<std::string> extra = {"train.max_steps=3", "train.eval_every=3",
                                          "data.valid_files=[" + dir_ + "/standard.jsonl]"};
  auto one = align(tmp / "one", data, extra);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto with_layout = extra;
  with_layout.insert(with_layout.end(), layout.begin(), layout.end());
  auto two = align(tmp / "two", data, with_layout, 2);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  for (const auto& key : layout)  // the run's startup line shows the layout ("tp=2", "zero=3")
    EXPECT_NE(two.output.find(key.substr(key.find('.') + 1)), std::string::npos) << two.output;
  for (const auto& m : kMetrics) {
    for (const std::string key : {m, "eval_" + m}) {
      auto a = testing::metric_by_step(tmp / "one/metrics.jsonl", key);
      auto b = testing::metric_by_step(tmp / "two/metrics.jsonl", key);
      ASSERT_EQ(a.size(), b.size()) << key;
      ASSERT_FALSE(a.empty()) << key;
      for (const auto& [step, v] : a) {
        // Step 1: every reward is 0 up to rounding, its accuracy a coin toss (see above).
        if (m == "rewards/accuracies" && step <= 1) continue;
        EXPECT_TRUE(near(b.at(step), v, 1e-5))
            << key << " at step " << step << ": two ranks " << b.at(step) << ", one " << v;
      }
    }
  }
}

// dp=2: each rank 4 of the step's 8 pairs; the reference computed by rank 0 and read by the
// other.
TEST_F(DpoReference, TwoDataParallelRanksEqualOneProcess) {
  expect_two_ranks_equal_one("standard", {});
}

// tp=2: each rank a vocabulary slice of the logits; the pairs' log-probs come through
// ModelOutputs' tensor-parallel cross-entropy.
TEST_F(DpoReference, TwoTensorParallelRanksEqualOneProcess) {
  expect_two_ranks_equal_one("standard", {"parallel.tp=2"});
}

// ZeRO-3 / FSDP: each rank holds half of every unit's parameters between their uses.
TEST_F(DpoReference, FsdpRanksEqualOneProcess) {
  expect_two_ranks_equal_one("standard", {"parallel.zero=3"});
}

// train.precision=bf16: the reference pass runs under bf16 autocast like the policy's forward
// (trl with bf16=True), cached under a key of its own; its log-probs are transformers' under
// CPU bf16 autocast, and differ from the fp32 reference.
TEST_F(DpoReference, Bf16ReferenceIsComputedUnderAutocast) {
  testing::ScratchDir tmp;
  auto fp32 = align(tmp / "fp32", "standard", {"train.max_steps=1"});
  ASSERT_EQ(fp32.exit_code, 0) << fp32.output;
  auto bf16 = align(tmp / "bf16", "standard", {"train.max_steps=1", "train.precision=bf16"});
  ASSERT_EQ(bf16.exit_code, 0) << bf16.output;
  std::string fp32_name, bf16_name;
  const std::vector<float> a = read_cache(tmp / "fp32", &fp32_name);
  const std::vector<float> b = read_cache(tmp / "bf16", &bf16_name);
  EXPECT_NE(fp32_name, bf16_name);
  EXPECT_NE(a, b);
  auto r = testing::run_python({testing::source_dir() + "/tests/reference/dpo_reference.py",
                                "logps", dir_ + "/model", dir_ + "/standard.jsonl", "bf16"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto want = nlohmann::json::parse(r.output.substr(r.output.rfind("{\"chosen\"")));
  const size_t n = want["chosen"].size();
  ASSERT_EQ(b.size(), 2 * n);
  double worst = 0;
  for (size_t i = 0; i < n; ++i)
    for (auto [got, ref] : {std::pair{b[i], want["chosen"][i].get<double>()},
                            std::pair{b[n + i], want["rejected"][i].get<double>()}})
      worst = std::max(worst, std::fabs(got - ref) / std::max(1.0, std::fabs(ref)));
  // Measured: 1.8e-5 (an fp32 reference is 1.5e-4 away, so this tells them apart).
  EXPECT_LT(worst, 5e-5) << "largest relative gap to transformers under bf16 autocast";
}

TEST_F(DpoReference, BadRowsAreOneLineErrorsOrSkipped) {
  testing::ScratchDir tmp;
  const std::string good = read_file(dir_ + "/standard.jsonl");
  const std::string bad = tmp / "bad.jsonl";
  write_file_atomic(bad, good + "{\"prompt\": \"Q\", \"chosen\": \" a\"}\n" +
                             "{\"prompt\": \"Q\", \"chosen\": 3, \"rejected\": \" b\"}\n" +
                             "{\"prompt\": [{\"role\": \"user\", \"content\": \"Q\"}], "
                             "\"chosen\": \" a\", \"rejected\": \" b\"}\n" +
                             "{not json\n");
  const std::string at = bad + ":9: field \"rejected\"";
  auto r = testing::run_reef({"align", "dpo", "--model", dir_ + "/model", "run.dir=" + (tmp / "r"),
                              "data.train_files=[" + bad + "]", "train.eval_every=0",
                              "train.max_steps=1", "logging.progress=off"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(at), std::string::npos) << r.output;
  EXPECT_FALSE(path_exists(tmp / "r/checkpoints"));

  auto skipped = testing::run_reef(
      {"align", "dpo", "--model", dir_ + "/model", "run.dir=" + (tmp / "s"),
       "data.train_files=[" + bad + "]", "data.on_bad_row=skip", "train.eval_every=0",
       "train.max_steps=1", "train.micro_batch_size=4", "logging.progress=off"});
  EXPECT_EQ(skipped.exit_code, 0) << skipped.output;
  EXPECT_NE(skipped.output.find("4 bad rows of " + bad + " skipped"), std::string::npos)
      << skipped.output;
  EXPECT_NE(skipped.output.find("8 preference pairs"), std::string::npos) << skipped.output;

  // Each kind of bad row names its field.
  for (auto [row, field] : std::vector<std::pair<std::string, std::string>>{
           {"{\"prompt\": \"Q\", \"chosen\": 3, \"rejected\": \" b\"}", ":1: field \"chosen\""},
           {"{\"prompt\": [{\"role\": \"user\", \"content\": \"Q\"}], \"chosen\": \" a\", "
            "\"rejected\": \" b\"}",
            ":1: field \"prompt\""},
           {"{\"chosen\": [{\"role\": \"assistant\", \"content\": \"a\"}], \"rejected\": \" b\"}",
            ":1: field \"rejected\""},
           {"[1, 2]", ":1: expected a JSON object"},
           {"{oops", ":1: not valid JSON"}}) {
    const std::string f = tmp / "one.jsonl";
    write_file_atomic(f, row + "\n");
    auto e = testing::run_reef({"data", "inspect", "--pairs", f, "--model", dir_ + "/model"});
    EXPECT_EQ(e.exit_code, 2) << e.output;
    EXPECT_NE(e.output.find(f + field), std::string::npos) << row << "\n" << e.output;
  }
}

TEST_F(DpoReference, InspectMarksTheCompletions) {
  auto r = testing::run_reef(
      {"data", "inspect", "--pairs", dir_ + "/conversational.jsonl", "--model", dir_ + "/model"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--- pair 1 ("), std::string::npos) << r.output;
  // The prompt ends with the generation prompt; the answer and the end of turn are counted.
  EXPECT_NE(r.output.find("<|im_start|>assistant\n[["), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("<|im_end|>\n]]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(": 8 pairs"), std::string::npos) << r.output;
}

TEST_F(DpoReference, ConfigErrorsNameTheKey) {
  testing::ScratchDir tmp;
  auto r = testing::run_reef({"align", "dpo", "--model", dir_ + "/model", "run.dir=" + (tmp / "r"),
                              "dpo.loss_type=sigmod"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("dpo.loss_type"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sigmoid"), std::string::npos) << r.output;
  auto s = testing::run_reef({"align", "dpo", "--model", dir_ + "/model", "run.dir=" + (tmp / "r"),
                              "dpo.label_smoothing=0.5"});
  EXPECT_EQ(s.exit_code, 2) << s.output;
  EXPECT_NE(s.output.find("dpo.label_smoothing"), std::string::npos) << s.output;
  // Pipeline stages take no packed rows: refused before any work.
  auto pp = testing::run_reef(
      {"align", "dpo", "--model", dir_ + "/model", "run.dir=" + (tmp / "p"), "parallel.pp=2"});
  EXPECT_EQ(pp.exit_code, 2) << pp.output;
  EXPECT_NE(pp.output.find("parallel.pp=2 (command line)"), std::string::npos) << pp.output;
  EXPECT_EQ(pp.output.find("reference"), std::string::npos) << pp.output;
}

}  // namespace
}  // namespace reef
