// Several peft adapters served at once over one base model (models/multi_lora.h through the
// engine), checked against each adapter merged into its own folder by `reef convert --adapter`
// (whose merged weights equal peft's merge_and_unload, peft_test.cpp): alone, each adapter's
// greedy tokens equal the merged model's; in one batch mixing two adapters and the base, every
// request gets the tokens it gets alone; prefix caching never hands one adapter's keys and
// values to another.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/peft_io.h"
#include "reef/infer/engine.h"
#include "testing/testing.h"

namespace reef {
namespace {

std::vector<int32_t> drain(RequestStream& stream) {
  std::vector<int32_t> out;
  TokenEvent ev;
  while (!stream.done()) {
    if (!stream.next(&ev, EngineClock::now() + std::chrono::seconds(60))) {
      ADD_FAILURE() << "engine timed out";
      break;
    }
    if (ev.token >= 0) out.push_back(ev.token);
    EXPECT_NE(ev.finish_reason, "error") << ev.error;
  }
  return out;
}

RequestParams greedy(std::shared_ptr<const ServedAdapter> adapter, int64_t n = 12) {
  RequestParams p;
  p.sampling.temperature = 0;
  p.sampling.max_new_tokens = n;
  p.sampling.stop_at_eos = false;
  p.adapter = std::move(adapter);
  return p;
}

TEST(MultiLora, EachAdapterEqualsItsMergedModelAloneAndInAMixedBatch) {
  const std::string dir = testing::cached_python_output(
      testing::source_dir() + "/tests/reference/peft_reference.py", {"make"});
  testing::ScratchDir scratch;
  const std::string base_dir = dir + "/llama";
  const std::vector<std::string> cases = {"llama_qv", "llama_all_linear_rslora"};
  ByteTokenizer tok;  // decodes the ids for text release; the base has no tokenizer of its own
  const std::vector<std::vector<int32_t>> prompts = {
      {5, 17, 33, 2, 60, 41, 8}, {70, 3, 3, 12, 44}, {5, 17, 33, 2, 60, 11, 9, 30}};

  // Merged references: every prompt through each adapter's merged folder, and the base.
  std::vector<std::vector<std::vector<int32_t>>> want(cases.size() + 1);  // [adapter][prompt]
  for (size_t a = 0; a <= cases.size(); ++a) {
    std::string folder = base_dir;
    if (a > 0) {
      folder = scratch / ("merged_" + cases[a - 1]);
      auto r = testing::run_reef(
          {"convert", "--model", base_dir, "--adapter", dir + "/" + cases[a - 1], "--out", folder});
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    CausalLM merged = load_model_folder(folder, torch::kCPU);
    merged->eval();
    for (const auto& p : prompts)
      want[a].push_back(generate(merged, tok, p, greedy(nullptr).sampling).tokens);
  }
  // The adapters change the output (else the test would prove nothing).
  EXPECT_NE(want[1][0], want[0][0]);
  EXPECT_NE(want[2][0], want[0][0]);

  CausalLM base = load_model_folder(base_dir, torch::kCPU);
  EngineOptions eo;
  eo.multi_lora = true;
  eo.max_slots = 8;
  eo.prefill_chunk = 3;
  Engine engine(base, tok, eo);
  std::vector<std::shared_ptr<const ServedAdapter>> adapters = {nullptr};
  for (const auto& c : cases) adapters.push_back(load_served_adapter(c, dir + "/" + c, base));

  // Alone, one request at a time (the prefix cache holds other adapters' tokens meanwhile).
  for (size_t a = 0; a < adapters.size(); ++a) {
    for (size_t p = 0; p < prompts.size(); ++p) {
      auto s = engine.submit(prompts[p], greedy(adapters[a]));
      ASSERT_TRUE(s);
      EXPECT_EQ(drain(*s), want[a][p]) << "adapter " << a << " prompt " << p;
    }
  }
  // Mixed: every (adapter, prompt) pair in one submission, decoded in shared steps.
  std::vector<std::vector<int32_t>> batch_prompts;
  std::vector<RequestParams> batch_params;
  std::vector<std::pair<size_t, size_t>> which;
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (size_t a = 0; a < adapters.size(); ++a) {
      batch_prompts.push_back(prompts[p]);
      batch_params.push_back(greedy(adapters[a]));
      which.emplace_back(a, p);
    }
  }
  auto streams = engine.submit_many(batch_prompts, batch_params);
  ASSERT_EQ(streams.size(), batch_prompts.size());
  for (size_t i = 0; i < streams.size(); ++i) {
    EXPECT_EQ(drain(*streams[i]), want[which[i].first][which[i].second])
        << "mixed batch: adapter " << which[i].first << " prompt " << which[i].second;
  }
  EXPECT_GT(engine.prefix_hit_tokens(), 0);  // prompts 0 and 2 share a start per adapter
}

TEST(MultiLora, MismatchedAdapterIsAUsageErrorNamingTheFile) {
  const std::string dir = testing::cached_python_output(
      testing::source_dir() + "/tests/reference/peft_reference.py", {"make"});
  CausalLM llama = load_model_folder(dir + "/llama", torch::kCPU);
  testing::ScratchDir scratch;
  const std::string bad = scratch / "bad";
  make_dirs(bad);
  auto cfg = nlohmann::json::parse(read_file(dir + "/llama_qv/adapter_config.json"));
  cfg["r"] = 5;  // the file's tensors have rank 4
  write_file_atomic(bad + "/adapter_config.json", cfg.dump());
  write_file_atomic(bad + "/adapter_model.safetensors",
                    read_file(dir + "/llama_qv/adapter_model.safetensors"));
  try {
    load_served_adapter("bad", bad, llama);
    ADD_FAILURE() << "a rank mismatch loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("r = 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_served_adapter("x", scratch / "no_such_adapter", llama), Error);
}

}  // namespace
}  // namespace reef
