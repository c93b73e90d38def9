// Tests for checkpoint/gguf_writer.h and gguf_export.h: the byte layout of a small hand-built
// file read back by a minimal GGUF reader written here from the spec (header, typed KVs, tensor
// infos with reversed dims, aligned offsets, padded data), q8_0 blocks of known values, tensor
// names and the export's errors. The whole-model checks against gguf-py are in
// tests/reference/gguf_test.cpp.
#include <c10/util/Half.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/gguf_export.h"
#include "reef/checkpoint/gguf_writer.h"
#include "testing/testing.h"

namespace reef {
namespace {

// A cursor over the bytes of a GGUF file.
struct Reader {
  std::string b;
  size_t pos = 0;
  template <class T>
  T get() {
    EXPECT_LE(pos + sizeof(T), b.size());
    T v;
    std::memcpy(&v, b.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str() {
    auto n = get<uint64_t>();
    std::string s = b.substr(pos, n);
    pos += n;
    return s;
  }
};

TEST(GgufWriter, HeaderKvsTensorInfosAndAlignedData) {
  testing::ScratchDir dir;
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_uint32("general.alignment", 64);
  w.add_float32("x.f", 1.5f);
  w.add_bool("x.b", true);
  w.add_int32_array("x.ints", {1, -2, 3});
  w.add_string_array("x.strs", {"a", "bc"});
  auto a = torch::arange(6, torch::kFloat32).reshape({2, 3});  // torch [2, 3] -> ggml [3, 2]
  auto b = torch::tensor({0.5f, -1.0f, 2.0f});
  w.add_tensor("a", {2, 3}, GgmlType::kF32, [a] { return a; });
  w.add_tensor("b", {3}, GgmlType::kF16, [b] { return b; });
  w.write(dir / "t.gguf");

  Reader r{read_file(dir / "t.gguf")};
  EXPECT_EQ(r.b.substr(0, 4), "GGUF");
  r.pos = 4;
  EXPECT_EQ(r.get<uint32_t>(), 3u);
  EXPECT_EQ(r.get<uint64_t>(), 2u);  // tensors
  EXPECT_EQ(r.get<uint64_t>(), 6u);  // kvs
  EXPECT_EQ(r.str(), "general.architecture");
  EXPECT_EQ(r.get<uint32_t>(), 8u);
  EXPECT_EQ(r.str(), "llama");
  EXPECT_EQ(r.str(), "general.alignment");
  EXPECT_EQ(r.get<uint32_t>(), 4u);
  EXPECT_EQ(r.get<uint32_t>(), 64u);
  EXPECT_EQ(r.str(), "x.f");
  EXPECT_EQ(r.get<uint32_t>(), 6u);
  EXPECT_EQ(r.get<float>(), 1.5f);
  EXPECT_EQ(r.str(), "x.b");
  EXPECT_EQ(r.get<uint32_t>(), 7u);
  EXPECT_EQ(r.get<uint8_t>(), 1u);
  EXPECT_EQ(r.str(), "x.ints");
  EXPECT_EQ(r.get<uint32_t>(), 9u);
  EXPECT_EQ(r.get<uint32_t>(), 5u);
  EXPECT_EQ(r.get<uint64_t>(), 3u);
  EXPECT_EQ(r.get<int32_t>(), 1);
  EXPECT_EQ(r.get<int32_t>(), -2);
  EXPECT_EQ(r.get<int32_t>(), 3);
  EXPECT_EQ(r.str(), "x.strs");
  EXPECT_EQ(r.get<uint32_t>(), 9u);
  EXPECT_EQ(r.get<uint32_t>(), 8u);
  EXPECT_EQ(r.get<uint64_t>(), 2u);
  EXPECT_EQ(r.str(), "a");
  EXPECT_EQ(r.str(), "bc");
  // Tensor infos: name, n_dims, dims reversed, type, offset (aligned to 64).
  EXPECT_EQ(r.str(), "a");
  EXPECT_EQ(r.get<uint32_t>(), 2u);
  EXPECT_EQ(r.get<uint64_t>(), 3u);
  EXPECT_EQ(r.get<uint64_t>(), 2u);
  EXPECT_EQ(r.get<uint32_t>(), 0u);
  EXPECT_EQ(r.get<uint64_t>(), 0u);
  EXPECT_EQ(r.str(), "b");
  EXPECT_EQ(r.get<uint32_t>(), 1u);
  EXPECT_EQ(r.get<uint64_t>(), 3u);
  EXPECT_EQ(r.get<uint32_t>(), 1u);
  EXPECT_EQ(r.get<uint64_t>(), 64u);  // 24 bytes of "a" padded to 64
  const size_t data = (r.pos + 63) / 64 * 64;
  for (size_t i = r.pos; i < data; ++i) EXPECT_EQ(r.b[i], '\0');
  r.pos = data;
  for (int i = 0; i < 6; ++i) EXPECT_EQ(r.get<float>(), static_cast<float>(i));
  r.pos = data + 64;
  EXPECT_EQ(r.get<uint16_t>(), c10::Half(0.5f).x);
  EXPECT_EQ(r.get<uint16_t>(), c10::Half(-1.0f).x);
  EXPECT_EQ(r.get<uint16_t>(), c10::Half(2.0f).x);
  EXPECT_EQ(r.b.size(), data + 128);  // the last tensor padded too
}

TEST(GgufWriter, RejectsDuplicatesBadShapesAndLeavesNoFile) {
  testing::ScratchDir dir;
  GgufWriter w;
  w.add_string("k", "v");
  EXPECT_THROW(w.add_string("k", "w"), Error);
  EXPECT_THROW(w.add_uint32("general.alignment", 24), Error);
  w.add_tensor("t", {2, 32}, GgmlType::kQ8_0, [] { return torch::zeros({2, 32}); });
  EXPECT_THROW(w.add_tensor("t", {1}, GgmlType::kF32, [] { return torch::zeros({1}); }), Error);
  EXPECT_THROW(w.add_tensor("q", {2, 48}, GgmlType::kQ8_0,
                            [] {
                              return torch::zeros({2, 48});
                            }),
               Error);
  w.add_tensor("wrong", {3}, GgmlType::kF32, [] { return torch::zeros({4}); });
  EXPECT_THROW(w.write(dir / "x.gguf"), Error);
  EXPECT_TRUE(list_dir(dir.path()).empty());
}

TEST(GgufWriter, Q8_0BlocksOfKnownValues) {
  std::vector<float> x(64);
  for (int i = 0; i < 32; ++i) x[i] = (i - 16) * 0.25f;  // max |x| = 4 -> d = 4/127
  // Second block all zeros: d = 0, q = 0.
  std::string q = quantize_q8_0(x.data(), 64);
  ASSERT_EQ(q.size(), 68u);
  uint16_t d;
  std::memcpy(&d, q.data(), 2);
  EXPECT_EQ(d, c10::Half(4.0f / 127.0f).x);
  const float id = 1.0f / (4.0f / 127.0f);
  for (int i = 0; i < 32; ++i)
    EXPECT_EQ(static_cast<int8_t>(q[2 + i]), static_cast<int8_t>(std::roundf(x[i] * id))) << i;
  EXPECT_EQ(static_cast<int8_t>(q[2]), -127);  // -4 is the extreme
  EXPECT_EQ(static_cast<int8_t>(q[2 + 16]), 0);
  for (int i = 34; i < 68; ++i) EXPECT_EQ(q[i], '\0');
  // Round half away from zero, as roundf: 0.5 * 127/127 ...
  std::vector<float> h(32, 0.0f);
  h[0] = 127.0f;  // d = 1
  h[1] = 2.5f;
  h[2] = -2.5f;
  q = quantize_q8_0(h.data(), 32);
  EXPECT_EQ(static_cast<int8_t>(q[2]), 127);
  EXPECT_EQ(static_cast<int8_t>(q[3]), 3);
  EXPECT_EQ(static_cast<int8_t>(q[4]), -3);
  EXPECT_THROW(quantize_q8_0(h.data(), 31), Error);
}

TEST(GgufExport, TypesNamesAndErrors) {
  EXPECT_EQ(parse_gguf_type("q8_0"), GgmlType::kQ8_0);
  EXPECT_EQ(parse_gguf_type("q4_0"), GgmlType::kQ4_0);
  EXPECT_EQ(parse_gguf_type("q4_k"), GgmlType::kQ4_K);
  EXPECT_EQ(parse_gguf_type("q6_K"), GgmlType::kQ6_K);
  EXPECT_EQ(gguf_file_type(GgmlType::kBF16), 32u);
  EXPECT_EQ(gguf_file_type(GgmlType::kQ4_K), 14u);  // llama.cpp's MOSTLY_Q4_K_S
  EXPECT_EQ(gguf_file_type(GgmlType::kQ6_K), 18u);
  EXPECT_EQ(ggml_nbytes(GgmlType::kQ4_K, 512), 288u);
  EXPECT_EQ(ggml_nbytes(GgmlType::kQ6_K, 256), 210u);
  EXPECT_EQ(ggml_nbytes(GgmlType::kQ4_0, 64), 36u);
  try {
    parse_gguf_type("q5_k");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  }
  EXPECT_EQ(gguf_tensor_name("llama", "model.layers.3.self_attn.q_proj.weight"),
            "blk.3.attn_q.weight");
  EXPECT_EQ(gguf_tensor_name("qwen2", "model.layers.0.self_attn.k_proj.bias"), "blk.0.attn_k.bias");
  EXPECT_EQ(gguf_tensor_name("qwen3", "model.layers.1.self_attn.q_norm.weight"),
            "blk.1.attn_q_norm.weight");
  EXPECT_EQ(gguf_tensor_name("mistral", "model.norm.weight"), "output_norm.weight");
  EXPECT_EQ(gguf_tensor_name("gpt2", "transformer.h.1.attn.c_attn.bias"), "blk.1.attn_qkv.bias");
  EXPECT_EQ(gguf_tensor_name("gpt2", "transformer.wpe.weight"), "position_embd.weight");
  EXPECT_EQ(gguf_tensor_name("gpt2", "lm_head.weight"), "output.weight");
  EXPECT_THROW(gguf_tensor_name("llama", "model.layers.0.self_attn.rotary.weight"), Error);

  testing::ScratchDir dir;
  GgufExportOptions o;
  o.model_dir = dir / "nope";
  o.out = dir / "m.gguf";
  try {
    export_gguf(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  }
  make_dirs(dir / "bert");
  write_file_atomic(dir / "bert/config.json", R"({"model_type": "bert"})");
  o.model_dir = dir / "bert";
  try {
    export_gguf(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("bert"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(path_exists(o.out));
}

}  // namespace
}  // namespace reef
