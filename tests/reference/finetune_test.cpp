// `reef finetune` against transformers and peft (tests/reference/finetune_reference.py): a tiny
// random Llama with a trained BPE tokenizer and a ChatML template whose replies are in
// {% generation %} blocks. Reef's validation loss (samples packed several to a row, or padded
// one per row) must equal the loss transformers gives running each conversation alone, counting
// exactly the targets its assistant-token mask marks. After training, the full model Reef saved,
// the LoRA adapter and the prompt-tuning adapter load in transformers / peft and give Reef's
// final validation loss: the masks, the packing, the loss normalisation and the adapters' files
// are all checked end to end.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

constexpr double kTolerance = 1e-5;  // relative

struct Metrics {
  std::map<int64_t, double> loss, val;  // by step
};

class FinetuneReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::cached_python_output(
        testing::source_dir() + "/tests/reference/finetune_reference.py", {"make"});
  }
  // Runs reef finetune into `run` with the base settings plus `extra` overrides.
  static Metrics finetune(const std::string& run, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"finetune",
                                     "--model",
                                     dir_ + "/model",
                                     "run.dir=" + run,
                                     "data.train_files=[" + dir_ + "/train.jsonl]",
                                     "data.valid_files=[" + dir_ + "/valid.jsonl]",
                                     "data.seq_len=250",
                                     "train.max_steps=3",
                                     "train.micro_batch_size=2",
                                     "train.grad_accum=2",
                                     "train.eval_every=3",
                                     "train.eval_batches=100",
                                     "optim.lr=0.01",
                                     "optim.warmup_steps=0",
                                     "logging.tensorboard=false",
                                     "logging.progress=off",
                                     "run.threads=1"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = testing::run_reef(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return {testing::metric_by_step(run + "/metrics.jsonl", "loss"),
            testing::metric_by_step(run + "/metrics.jsonl", "val_loss")};
  }
  static std::string dir_;
};

std::string FinetuneReference::dir_;

TEST_F(FinetuneReference, LossesEqualTransformersAndPeft) {
  testing::ScratchDir tmp;
  const Metrics full = finetune(tmp / "full", {});
  const Metrics unpacked =
      finetune(tmp / "unpacked", {"data.packing=false", "train.max_steps=1", "train.eval_every=1"});
  const Metrics lora =
      finetune(tmp / "lora", {"peft.method=lora", "peft.target_modules=[all-linear]",
                              "peft.lora_r=4", "peft.lora_alpha=8"});
  const Metrics prompt =
      finetune(tmp / "prompt", {"peft.method=prompt_tuning", "data.packing=false",
                                "peft.num_virtual_tokens=4", "peft.prompt_init_text=Quiet river"});
  for (const Metrics* m : {&full, &unpacked, &lora, &prompt}) {
    ASSERT_GE(m->val.size(), 2u);
    ASSERT_EQ(m->val.begin()->first, 0);
  }
  ASSERT_EQ(full.loss.size(), 3u);
  EXPECT_LT(full.loss.rbegin()->second, full.loss.begin()->second);  // it learns
  EXPECT_LT(lora.loss.rbegin()->second, lora.loss.begin()->second);

  // What transformers / peft say, each conversation run alone.
  nlohmann::json jobs = nlohmann::json::array();
  auto job = [&](const std::string& model, const std::string& adapter) {
    jobs.push_back({{"model", model},
                    {"adapter", adapter.empty() ? nlohmann::json() : nlohmann::json(adapter)},
                    {"data", dir_ + "/valid.jsonl"}});
  };
  job(dir_ + "/model", "");                                 // 0: the base
  job(tmp / "full/checkpoints/step_3", "");                 // 1: full SFT, saved as a model folder
  job(dir_ + "/model", tmp / "lora/checkpoints/step_3");    // 2: LoRA adapter
  job(dir_ + "/model", tmp / "prompt/checkpoints/step_3");  // 3: prompt-tuning adapter
  {
    std::ofstream f(tmp / "jobs.json");
    f << jobs.dump();
  }
  auto r = testing::run_python({testing::source_dir() + "/tests/reference/finetune_reference.py",
                                "val-loss", tmp / "jobs.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string out = r.output.substr(r.output.rfind('['));
  auto want = nlohmann::json::parse(out);
  ASSERT_EQ(want.size(), 4u);
  auto near = [](double got, double ref, const char* what) {
    EXPECT_NEAR(got, ref, kTolerance * std::abs(ref)) << what;
  };
  const double base = want[0]["val_loss"].get<double>();
  EXPECT_GT(want[0]["targets"].get<int>(), 100);
  near(full.val.begin()->second, base, "packed validation loss of the base model");
  near(unpacked.val.begin()->second, base, "one-sample-per-row validation loss of the base model");
  near(lora.val.begin()->second, base, "LoRA starts as the base (B = 0)");
  near(full.val.rbegin()->second, want[1]["val_loss"].get<double>(),
       "fully fine-tuned model folder");
  near(lora.val.rbegin()->second, want[2]["val_loss"].get<double>(), "LoRA adapter in peft");
  near(prompt.val.rbegin()->second, want[3]["val_loss"].get<double>(),
       "prompt-tuning adapter in peft");
  // The adapters really changed the model.
  EXPECT_GT(std::abs(want[2]["val_loss"].get<double>() - base), 1e-3);
  EXPECT_GT(std::abs(want[3]["val_loss"].get<double>() - base), 1e-3);
  // PEFT checkpoints hold the adapter, not the model.
  EXPECT_TRUE(path_exists(tmp / "lora/checkpoints/step_3/adapter_model.safetensors"));
  EXPECT_FALSE(path_exists(tmp / "lora/checkpoints/step_3/model.safetensors"));
}

}  // namespace
}  // namespace reef
