// Tests for train/checkpointer.h (one process; the layouts of several ranks are covered by the
// integration tests): save/load round trip, keep-last, and that missing, truncated or
// corrupted files are detected with a message naming them.
#include "reef/train/checkpointer.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

Config tiny_config(const std::string& dir) {
  Config c;
  c.run.dir = dir;
  c.model.arch = "llama";
  c.model.vocab_size = 258;
  c.model.hidden_size = 32;
  c.model.n_layers = 2;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.max_seq_len = 64;
  return c;
}

struct Fixture {
  testing::ScratchDir dir;
  Config cfg = tiny_config(dir.path());
  ByteTokenizer tok;
  CausalLM model{nullptr};
  std::unique_ptr<Strategy> strategy;
  Fixture() {
    torch::manual_seed(3);
    model = CausalLM(cfg.model);
    strategy = parallelize(model, cfg, nullptr);
    auto x = torch::randint(0, 258, {2, 8});
    model->forward(x).sum().backward();
    strategy->step();
  }
  std::string save(int64_t step, int64_t keep = 0) {
    TrainerState s;
    s.step = step;
    s.tokens_seen = step * 100;
    s.consumed_samples = 107;
    s.data_fingerprint = "00c0ffee00c0ffee";
    s.data_spec = {{"seq_len", 16}, {"blend", {"0.5", "a", "0.5", "b"}}};
    s.rng_cpu_hex = capture_rng_state();
    s.lr = 1e-3;
    cfg.checkpoint.keep_last = keep;
    return Checkpointer(cfg, *strategy, tok).save(s);
  }
};

TEST(Checkpointing, RoundTripRestoresWeightsStateAndRng) {
  Fixture f;
  std::string path = f.save(5);
  EXPECT_EQ(path, f.dir / "checkpoints/step_5");
  for (const char* n :
       {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
        "optimizer.safetensors", "trainer_state.json", "config.yaml"})
    EXPECT_TRUE(path_exists(join_path(path, n))) << n;
  float r1 = torch::rand({1}).item<float>();

  torch::manual_seed(99);
  CausalLM other(f.cfg.model);
  auto strategy2 = parallelize(other, f.cfg, nullptr);
  TrainerState s = Checkpointer(f.cfg, *strategy2, f.tok).load(path);
  EXPECT_EQ(s.step, 5);
  EXPECT_EQ(s.tokens_seen, 500);
  EXPECT_EQ(s.consumed_samples, 107);
  EXPECT_EQ(s.data_fingerprint, "00c0ffee00c0ffee");
  EXPECT_EQ(s.data_spec["blend"][3], "b");
  restore_rng_state(s.rng_cpu_hex);
  EXPECT_EQ(torch::rand({1}).item<float>(), r1);
  auto a = f.model->named_parameters(), b = other->named_parameters();
  for (auto& i : a) EXPECT_TRUE(torch::equal(i.value(), b[i.key()])) << i.key();
  int64_t st1 = 0, st2 = 0;
  auto m1 = f.strategy->optimizer().state_tensors(&st1),
       m2 = strategy2->optimizer().state_tensors(&st2);
  EXPECT_EQ(st1, st2);
  ASSERT_EQ(m1.size(), m2.size());
  for (size_t i = 0; i < m1.size(); ++i) EXPECT_TRUE(torch::equal(m1[i].second, m2[i].second));
}

TEST(Checkpointing, KeepsLastKAndFindsLatest) {
  Fixture f;
  for (int s : {2, 4, 6, 8, 10}) f.save(s, 3);
  EXPECT_EQ(list_dir(f.dir / "checkpoints"),
            (std::vector<std::string>{"step_10", "step_6", "step_8"}));
  EXPECT_EQ(*latest_checkpoint(f.dir.path()), f.dir / "checkpoints/step_10");
  // A leftover temp folder of a killed save is ignored and cleaned.
  make_dirs(f.dir / "checkpoints/.tmp-step_12-999");
  EXPECT_EQ(*latest_checkpoint(f.dir.path()), f.dir / "checkpoints/step_10");
}

void expect_load_error(Fixture& f, const std::string& path, const std::string& needle) {
  CausalLM other(f.cfg.model);
  auto strategy = parallelize(other, f.cfg, nullptr);
  try {
    Checkpointer(f.cfg, *strategy, f.tok).load(path);
    FAIL() << "no error for " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Checkpointing, DetectsTruncationCorruptionAndMissingFiles) {
  Fixture f;
  std::string path = f.save(1);
  std::string model_file = join_path(path, "model.safetensors");
  std::string orig = read_file(model_file);

  write_file_atomic(model_file, orig.substr(0, orig.size() / 2));
  expect_load_error(f, path, "truncated");

  std::string flipped = orig;
  flipped[flipped.size() - 3] ^= 0x40;
  write_file_atomic(model_file, flipped);
  expect_load_error(f, path, "checksum mismatch");

  write_file_atomic(model_file, orig);
  remove_all(join_path(path, "optimizer.safetensors"));
  expect_load_error(f, path, "optimizer.safetensors is missing");

  write_file_atomic(join_path(path, "trainer_state.json"), "{\"format_version\": 1, \"fil");
  expect_load_error(f, path, "not valid JSON");
}

}  // namespace
}  // namespace reef
