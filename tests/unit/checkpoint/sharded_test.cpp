// Tests for checkpoint/sharded.h and the folder functions of checkpoint/model_io.h: shard
// planning, the index writer and reader, sharded save/load round trips of a tiny model, loading
// F16/BF16 files into fp32 parameters, and every inconsistency between an index and its shards
// reported with the file and the tensor (real files in a ScratchDir).
#include "reef/checkpoint/sharded.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "testing/testing.h"

namespace reef {
namespace {

using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The message of the reef::Error `f` throws; fails the test when it throws nothing.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no reef::Error thrown";
  return "";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

ModelConfig tiny_model_config() {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 64;
  c.hidden_size = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.max_seq_len = 32;
  return c;
}

CausalLM tiny_model(int seed) {
  torch::manual_seed(seed);
  CausalLM m(tiny_model_config());
  torch::NoGradGuard ng;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.5);
  return m;
}

void expect_same_params(CausalLM& a, CausalLM& b) {
  auto pa = a->named_parameters(true), pb = b->named_parameters(true);
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
}

Tensors three_tensors() {
  return {{"a", torch::ones({4, 4})},        // 64 bytes
          {"b", torch::full({8}, 2.0)},      // 32 bytes
          {"c", torch::full({2, 2}, 3.0)}};  // 16 bytes
}

TEST(PlanShards, FillsInOrderWithoutSplittingATensor) {
  using P = std::vector<std::pair<size_t, size_t>>;
  EXPECT_EQ(plan_shards({}, 10), P{});
  EXPECT_EQ(plan_shards({5, 5, 5}, 0), (P{{0, 3}}));
  EXPECT_EQ(plan_shards({5, 5, 5}, 10), (P{{0, 2}, {2, 3}}));
  EXPECT_EQ(plan_shards({5, 5, 5}, 9), (P{{0, 1}, {1, 2}, {2, 3}}));
  // A tensor larger than the limit gets a shard of its own.
  EXPECT_EQ(plan_shards({3, 50, 3, 3}, 10), (P{{0, 1}, {1, 2}, {2, 4}}));
  EXPECT_EQ(plan_shards({5, 5, 5}, 1000), (P{{0, 3}}));
}

TEST(WeightIndex, WritesTheTransformersLayoutAndReadsItBack) {
  testing::ScratchDir dir;
  WeightIndex index;
  index.total_size = 112;
  index.weight_map = {{"b", "model-00002-of-00002.safetensors"},
                      {"a", "model-00001-of-00002.safetensors"}};
  write_weight_index(dir / "i.json", index, 28);
  EXPECT_EQ(read_file(dir / "i.json"),
            "{\n  \"metadata\": {\n    \"total_parameters\": 28,\n    \"total_size\": 112\n  },\n"
            "  \"weight_map\": {\n    \"a\": \"model-00001-of-00002.safetensors\",\n"
            "    \"b\": \"model-00002-of-00002.safetensors\"\n  }\n}\n");
  WeightIndex back = read_weight_index(dir / "i.json");
  EXPECT_EQ(back.total_size, 112u);
  EXPECT_EQ(back.weight_map, index.weight_map);
  EXPECT_EQ(shard_file_name(3, 12), "model-00003-of-00012.safetensors");
}

TEST(WeightIndex, RejectsMalformedIndexes) {
  testing::ScratchDir dir;
  auto bad = [&](const std::string& text) {
    write_file_atomic(dir / "i.json", text);
    return error_of([&] { read_weight_index(dir / "i.json"); });
  };
  EXPECT_HAS(bad("{"), "malformed JSON");
  EXPECT_HAS(bad("[]"), "JSON object");
  EXPECT_HAS(bad("{\"metadata\": {}}"), "weight_map");
  EXPECT_HAS(bad("{\"weight_map\": {}}"), "empty");
  EXPECT_HAS(bad("{\"weight_map\": {\"a\": 3}}"), "'a'");
  EXPECT_HAS(bad("{\"weight_map\": {\"a\": \"../x.safetensors\"}}"), "not a file inside");
  EXPECT_HAS(bad("{\"weight_map\": {\"a\": \"/x.safetensors\"}}"), "not a file inside");
  EXPECT_HAS(bad("{\"metadata\": {\"total_size\": \"big\"}, \"weight_map\": {\"a\": \"x\"}}"),
             "total_size");
  EXPECT_HAS(bad("{\"weight_map\": {\"a\": 3}}"), dir / "i.json");
}

TEST(SaveWeights, ShardsAndIndexRoundTrip) {
  testing::ScratchDir dir;
  auto written = save_weights(dir.path(), three_tensors(), 100);
  EXPECT_EQ(written,
            (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                      "model-00002-of-00002.safetensors", kWeightsIndexFile}));
  EXPECT_FALSE(path_exists(dir / kWeightsFile));
  auto index = read_weight_index(dir / kWeightsIndexFile);
  EXPECT_EQ(index.total_size, 112u);
  EXPECT_EQ(index.weight_map.at("a"), "model-00001-of-00002.safetensors");
  EXPECT_EQ(index.weight_map.at("b"), "model-00001-of-00002.safetensors");  // 64 + 32 <= 100
  EXPECT_EQ(index.weight_map.at("c"), "model-00002-of-00002.safetensors");
  auto j = nlohmann::json::parse(read_file(dir / kWeightsIndexFile));
  EXPECT_EQ(j["metadata"]["total_parameters"], 28);
  EXPECT_EQ(SafetensorsFile::open(dir / "model-00001-of-00002.safetensors").metadata().at("format"),
            "pt");

  for (const std::string& path : {dir.path(), dir / kWeightsIndexFile}) {
    WeightFiles w = WeightFiles::open(path);
    EXPECT_TRUE(w.sharded());
    EXPECT_EQ(w.source(), dir / kWeightsIndexFile);
    EXPECT_EQ(w.names(), (std::vector<std::string>{"a", "b", "c"}));
    for (const auto& [name, t] : three_tensors()) EXPECT_TRUE(torch::equal(w.tensor(name), t));
    EXPECT_EQ(w.file_of("c").path(), dir / "model-00002-of-00002.safetensors");
  }
}

TEST(SaveWeights, SwitchingLayoutsRemovesStaleFiles) {
  testing::ScratchDir dir;
  save_weights(dir.path(), three_tensors(), 0);
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{kWeightsFile});
  save_weights(dir.path(), three_tensors(), 40);  // 3 shards
  EXPECT_EQ(list_dir(dir.path()),
            (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                      "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors", kWeightsIndexFile}));
  write_file_atomic(dir / "notes.txt", "kept");
  save_weights(dir.path(), three_tensors(), 100);  // 2 shards: the -of-00003 files go
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                            "model-00002-of-00002.safetensors",
                                                            kWeightsIndexFile, "notes.txt"}));
  EXPECT_TRUE(WeightFiles::open(dir.path()).sharded());
  save_weights(dir.path(), three_tensors(), 1000);  // fits: one file, the index goes
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{kWeightsFile, "notes.txt"}));
  EXPECT_FALSE(WeightFiles::open(dir.path()).sharded());
}

TEST(WeightFiles, ReportsEveryInconsistencyWithFileAndTensor) {
  testing::ScratchDir dir;
  const std::string s1 = "model-00001-of-00002.safetensors",
                    s2 = "model-00002-of-00002.safetensors";
  auto write = [&](const std::map<std::string, std::string>& map) {
    save_safetensors(dir / s1, {{"a", torch::ones({2})}, {"b", torch::ones({2})}});
    save_safetensors(dir / s2, {{"c", torch::ones({2})}});
    WeightIndex index;
    index.weight_map = map;
    write_weight_index(dir / kWeightsIndexFile, index, 6);
  };
  auto setup = [&](const std::map<std::string, std::string>& map) {
    write(map);
    return error_of([&] { WeightFiles::open(dir.path()); });
  };
  const std::map<std::string, std::string> good = {{"a", s1}, {"b", s1}, {"c", s2}};

  // A tensor the index lists that its shard does not hold.
  auto m = good;
  m["d"] = s2;
  std::string e = setup(m);
  EXPECT_HAS(e, dir / kWeightsIndexFile);
  EXPECT_HAS(e, "'d'");
  EXPECT_HAS(e, s2);

  // A shard file that does not exist.
  m = good;
  m["c"] = "model-00003-of-00003.safetensors";
  e = setup(m);
  EXPECT_HAS(e, "model-00003-of-00003.safetensors");
  EXPECT_HAS(e, "does not exist");

  // A tensor in two shards.
  m = good;
  save_safetensors(dir / s1, {{"a", torch::ones({2})}, {"b", torch::ones({2})}});
  WeightIndex index;
  index.weight_map = good;
  write_weight_index(dir / kWeightsIndexFile, index, 6);
  save_safetensors(dir / s2, {{"c", torch::ones({2})}, {"a", torch::ones({2})}});
  e = error_of([&] { WeightFiles::open(dir.path()); });
  EXPECT_HAS(e, "'a'");
  EXPECT_HAS(e, "two shards");
  EXPECT_HAS(e, s1);
  EXPECT_HAS(e, s2);

  // A tensor in a shard that the index does not list.
  m = good;
  m.erase("b");
  e = setup(m);
  EXPECT_HAS(e, "'b'");
  EXPECT_HAS(e, "does not list");

  // A tensor listed under the wrong shard.
  m = good;
  m["c"] = s1;
  m["z"] = s2;
  e = setup(m);
  EXPECT_HAS(e, "'c'");

  // A malformed shard names the shard.
  write(good);
  EXPECT_EQ(WeightFiles::open(dir.path()).names(), (std::vector<std::string>{"a", "b", "c"}));
  write_file_atomic(dir / s2, "nonsense");
  e = error_of([&] { WeightFiles::open(dir.path()); });
  EXPECT_HAS(e, s2);

  // No weights at all.
  testing::ScratchDir empty;
  e = error_of([&] { WeightFiles::open(empty.path()); });
  EXPECT_HAS(e, "no model weights");
  EXPECT_HAS(e, kWeightsIndexFile);
}

TEST(ModelFolder, ShardedSaveLoadsBackExactly) {
  testing::ScratchDir dir;
  CausalLM a = tiny_model(1);
  save_model_folder(dir.path(), a, nullptr, 4096);
  auto index = read_weight_index(dir / kWeightsIndexFile);
  std::set<std::string> shards;
  for (const auto& [name, file] : index.weight_map) shards.insert(file);
  EXPECT_GT(shards.size(), 2u);
  EXPECT_EQ(index.weight_map.size(), a->named_parameters(true).size());
  // Shards follow parameter order: the first parameter is in the first shard, the last in the last.
  auto params = a->named_parameters(true);
  EXPECT_EQ(index.weight_map.at(params.keys().front()), *shards.begin());
  EXPECT_EQ(index.weight_map.at(params.keys().back()), *shards.rbegin());
  uint64_t total = 0;
  for (const auto& p : params) total += p.value().numel() * 4;
  EXPECT_EQ(index.total_size, total);

  CausalLM b = load_model_folder(dir.path(), torch::kCPU);
  expect_same_params(a, b);
  CausalLM c = tiny_model(2);
  load_model_weights(c, dir / kWeightsIndexFile);
  expect_same_params(a, c);
}

TEST(ModelFolder, HalfPrecisionFilesLoadIntoFp32Parameters) {
  for (auto dtype : {torch::kHalf, torch::kBFloat16, torch::kDouble}) {
    SCOPED_TRACE(c10::toString(dtype));
    testing::ScratchDir dir;
    CausalLM a = tiny_model(3);
    Tensors half;
    for (const auto& [name, t] : model_tensors(a)) half.emplace_back(name, t.to(dtype));
    save_weights(dir.path(), half, 3000);
    CausalLM b = tiny_model(4);
    load_model_weights(b, dir.path());
    for (const auto& item : b->named_parameters(true)) {
      EXPECT_EQ(item.value().scalar_type(), torch::kFloat);
      EXPECT_TRUE(torch::equal(item.value(),
                               a->named_parameters(true)[item.key()].to(dtype).to(torch::kFloat)))
          << item.key();
    }
  }
}

TEST(ModelFolder, TiedModelAcceptsAHeadCopyOnlyWhenItEqualsTheEmbedding) {
  ModelConfig cfg = tiny_model_config();
  cfg.tie_embeddings = true;
  torch::manual_seed(7);
  CausalLM a(cfg);
  auto tensors = model_tensors(a);
  torch::Tensor embed;
  for (const auto& [name, t] : tensors)
    if (name == "model.embed_tokens.weight") embed = t;
  ASSERT_TRUE(embed.defined());
  testing::ScratchDir dir;
  auto with_head = tensors;
  with_head.emplace_back("lm_head.weight", embed.clone());
  save_weights(dir.path(), with_head, 0);
  torch::manual_seed(8);
  CausalLM b(cfg);
  load_model_weights(b, dir.path());
  expect_same_params(a, b);
  // A head that differs is refused, naming the tensor.
  with_head.back().second = embed + 1;
  save_weights(dir.path(), with_head, 0);
  std::string e = error_of([&] { load_model_weights(b, dir.path()); });
  EXPECT_HAS(e, "tensor 'lm_head.weight' differs from 'model.embed_tokens.weight'");
  EXPECT_HAS(e, "tie_word_embeddings");
}

TEST(ModelFolder, StrictLoadNamesFileAndTensor) {
  testing::ScratchDir dir;
  CausalLM a = tiny_model(5);
  auto tensors = model_tensors(a);
  CausalLM b = tiny_model(6);
  auto before = model_tensors(b)[0].second.clone();

  // A missing parameter (dropped from the last shard and the index).
  auto fewer = tensors;
  std::string dropped = fewer.back().first;
  fewer.pop_back();
  save_weights(dir.path(), fewer, 4096);
  std::string e = error_of([&] { load_model_weights(b, dir.path()); });
  EXPECT_HAS(e, dir / kWeightsIndexFile);
  EXPECT_HAS(e, "missing tensor '" + dropped + "'");
  EXPECT_TRUE(torch::equal(model_tensors(b)[0].second, before));  // nothing was loaded

  // An extra tensor names its shard.
  auto more = tensors;
  more.emplace_back("extra.weight", torch::ones({3}));
  save_weights(dir.path(), more, 4096);
  e = error_of([&] { load_model_weights(b, dir.path()); });
  EXPECT_HAS(e, "'extra.weight' is not a parameter");
  EXPECT_HAS(e, "(shard " + dir.path() + "/model-000");

  // A wrong shape.
  auto wrong = tensors;
  wrong[1].second = torch::ones({7});
  save_weights(dir.path(), wrong, 4096);
  e = error_of([&] { load_model_weights(b, dir.path()); });
  EXPECT_HAS(e, "'" + wrong[1].first + "' has shape [7]");

  // A dtype weights cannot come from.
  auto ints = tensors;
  ints[0].second = ints[0].second.to(torch::kInt);
  save_weights(dir.path(), ints, 0);
  e = error_of([&] { load_model_weights(b, dir.path()); });
  EXPECT_HAS(e, dir / kWeightsFile);
  EXPECT_HAS(e, "dtype I32");
  EXPECT_TRUE(torch::equal(model_tensors(b)[0].second, before));
}

}  // namespace
}  // namespace reef
