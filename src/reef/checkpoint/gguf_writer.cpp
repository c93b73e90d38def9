// GGUF v3 serialization: KV encoding, tensor infos with aligned offsets, streamed data section,
// and the f32/f16/bf16/q8_0 encoders (see gguf_writer.h).
#include "reef/checkpoint/gguf_writer.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/checkpoint/gguf_kquants.h"

namespace reef {
namespace {

static_assert(sizeof(float) == 4, "GGUF needs IEEE float32");

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

std::string typed(GgufValueType t) {
  std::string out;
  put<uint32_t>(out, static_cast<uint32_t>(t));
  return out;
}

uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

const char* ggml_type_name(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return "f32";
    case GgmlType::kF16:
      return "f16";
    case GgmlType::kQ8_0:
      return "q8_0";
    case GgmlType::kQ4_0:
      return "q4_0";
    case GgmlType::kQ4_K:
      return "q4_K";
    case GgmlType::kQ6_K:
      return "q6_K";
    case GgmlType::kBF16:
      return "bf16";
  }
  return "?";
}

uint64_t ggml_nbytes(GgmlType t, int64_t numel) {
  switch (t) {
    case GgmlType::kF32:
      return 4 * static_cast<uint64_t>(numel);
    case GgmlType::kF16:
    case GgmlType::kBF16:
      return 2 * static_cast<uint64_t>(numel);
    case GgmlType::kQ8_0:
      if (numel % kQ8BlockSize != 0) fail("q8_0: {} values is not a multiple of 32", numel);
      return static_cast<uint64_t>(numel / kQ8BlockSize) * (2 + kQ8BlockSize);
    case GgmlType::kQ4_0:
      if (numel % kQ4BlockSize != 0) fail("q4_0: {} values is not a multiple of 32", numel);
      return static_cast<uint64_t>(numel / kQ4BlockSize) * (2 + kQ4BlockSize / 2);
    case GgmlType::kQ4_K:
    case GgmlType::kQ6_K:
      if (numel % kQKK != 0)
        fail("{}: {} values is not a multiple of 256", ggml_type_name(t), numel);
      return static_cast<uint64_t>(numel / kQKK) * (t == GgmlType::kQ4_K ? 144 : 210);
  }
  fail("unknown ggml type {}", static_cast<uint32_t>(t));
}

std::string quantize_q8_0(const float* x, int64_t n) {
  if (n % kQ8BlockSize != 0) fail("q8_0: {} values is not a multiple of 32", n);
  std::string out(ggml_nbytes(GgmlType::kQ8_0, n), '\0');
  char* p = out.data();
  for (int64_t b = 0; b < n / kQ8BlockSize; ++b) {
    const float* v = x + b * kQ8BlockSize;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQ8BlockSize; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const c10::Half h(d);
    std::memcpy(p, &h.x, 2);
    p += 2;
    for (int64_t j = 0; j < kQ8BlockSize; ++j) {
      const float q = std::roundf(v[j] * id);  // |q| <= 127 by construction
      *p++ = static_cast<char>(static_cast<int8_t>(q));
    }
  }
  return out;
}

std::string quantize_q4_0(const float* x, int64_t n) {
  if (n % kQ4BlockSize != 0) fail("q4_0: {} values is not a multiple of 32", n);
  std::string out(ggml_nbytes(GgmlType::kQ4_0, n), '\0');
  char* p = out.data();
  constexpr int64_t half = kQ4BlockSize / 2;
  for (int64_t b = 0; b < n / kQ4BlockSize; ++b) {
    const float* v = x + b * kQ4BlockSize;
    float amax = 0.0f, max = 0.0f;
    for (int64_t j = 0; j < kQ4BlockSize; ++j) {
      if (amax < std::fabs(v[j])) amax = std::fabs(v[j]), max = v[j];
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const c10::Half h(d);
    std::memcpy(p, &h.x, 2);
    p += 2;
    auto q = [&](int64_t j) {
      const float t = std::trunc(v[j] * id + 8.5f);  // in [0, 16]
      return static_cast<uint8_t>(std::min(15, static_cast<int>(t)));
    };
    for (int64_t j = 0; j < half; ++j)
      *p++ = static_cast<char>(q(j) | static_cast<uint8_t>(q(j + half) << 4));
  }
  return out;
}

std::string encode_tensor(const torch::Tensor& t, GgmlType type) {
  torch::Dtype dtype = torch::kFloat32;
  if (type == GgmlType::kF16) dtype = torch::kFloat16;
  if (type == GgmlType::kBF16) dtype = torch::kBFloat16;
  // Convert from the source dtype directly (bf16 -> f16 rounds once, as torch's .half()).
  auto c = t.detach().to(torch::kCPU).to(dtype).contiguous();
  if (type == GgmlType::kQ8_0) return quantize_q8_0(c.data_ptr<float>(), c.numel());
  if (type == GgmlType::kQ4_0) return quantize_q4_0(c.data_ptr<float>(), c.numel());
  if (type == GgmlType::kQ4_K) return quantize_q4_k(c.data_ptr<float>(), c.numel());
  if (type == GgmlType::kQ6_K) return quantize_q6_k(c.data_ptr<float>(), c.numel());
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

void GgufWriter::add_kv(const std::string& key, std::string encoded) {
  for (const auto& kv : kvs_) {
    if (kv.key == key) fail("GGUF: duplicate metadata key {}", key);
  }
  kvs_.push_back({key, std::move(encoded)});
}

void GgufWriter::add_uint32(const std::string& key, uint32_t v) {
  if (key == "general.alignment") {
    if (v == 0 || (v & (v - 1)) != 0) fail("GGUF: general.alignment {} is not a power of two", v);
    alignment_ = v;
  }
  auto e = typed(GgufValueType::kUint32);
  put(e, v);
  add_kv(key, std::move(e));
}

void GgufWriter::add_int32(const std::string& key, int32_t v) {
  auto e = typed(GgufValueType::kInt32);
  put(e, v);
  add_kv(key, std::move(e));
}

void GgufWriter::add_uint64(const std::string& key, uint64_t v) {
  auto e = typed(GgufValueType::kUint64);
  put(e, v);
  add_kv(key, std::move(e));
}

void GgufWriter::add_float32(const std::string& key, float v) {
  auto e = typed(GgufValueType::kFloat32);
  put(e, v);
  add_kv(key, std::move(e));
}

void GgufWriter::add_bool(const std::string& key, bool v) {
  auto e = typed(GgufValueType::kBool);
  put<uint8_t>(e, v ? 1 : 0);
  add_kv(key, std::move(e));
}

void GgufWriter::add_string(const std::string& key, const std::string& v) {
  auto e = typed(GgufValueType::kString);
  put_string(e, v);
  add_kv(key, std::move(e));
}

void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& v) {
  auto e = typed(GgufValueType::kArray);
  put<uint32_t>(e, static_cast<uint32_t>(GgufValueType::kString));
  put<uint64_t>(e, v.size());
  for (const auto& s : v) put_string(e, s);
  add_kv(key, std::move(e));
}

void GgufWriter::add_int32_array(const std::string& key, const std::vector<int32_t>& v) {
  auto e = typed(GgufValueType::kArray);
  put<uint32_t>(e, static_cast<uint32_t>(GgufValueType::kInt32));
  put<uint64_t>(e, v.size());
  for (int32_t x : v) put(e, x);
  add_kv(key, std::move(e));
}

void GgufWriter::add_float32_array(const std::string& key, const std::vector<float>& v) {
  auto e = typed(GgufValueType::kArray);
  put<uint32_t>(e, static_cast<uint32_t>(GgufValueType::kFloat32));
  put<uint64_t>(e, v.size());
  for (float x : v) put(e, x);
  add_kv(key, std::move(e));
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> shape, GgmlType type,
                            std::function<torch::Tensor()> produce) {
  for (const auto& t : tensors_) {
    if (t.name == name) fail("GGUF: duplicate tensor {}", name);
  }
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  const int64_t block = type == GgmlType::kQ4_K || type == GgmlType::kQ6_K ? kQKK : kQ8BlockSize;
  if (type != GgmlType::kF32 && type != GgmlType::kF16 && type != GgmlType::kBF16 &&
      (shape.empty() || shape.back() % block != 0))
    fail("GGUF: tensor {} {}: {} needs rows of a multiple of {} values", name, shape_str(shape),
         ggml_type_name(type), block);
  tensors_.push_back(
      {name, std::move(shape), type, std::move(produce), ggml_nbytes(type, numel), 0});
}

void GgufWriter::write(const std::string& path) const {
  std::string head;
  head += "GGUF";
  put<uint32_t>(head, kGgufVersion);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kvs_.size());
  for (const auto& kv : kvs_) {
    put_string(head, kv.key);
    head += kv.encoded;
  }
  // Offsets are relative to the data section and each aligned.
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    offset = align_up(offset, alignment_);
    offsets.push_back(offset);
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(head, *it);
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += t.nbytes;
  }
  head.resize(align_up(head.size(), alignment_), '\0');

  AtomicFileWriter out(path);
  out.write(head);
  uint64_t pos = 0;
  const std::string zeros(alignment_, '\0');
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& t = tensors_[i];
    out.write(zeros.data(), offsets[i] - pos);
    torch::Tensor v = t.produce();
    if (v.sizes().vec() != t.shape)
      fail("GGUF: tensor {} has shape {}, declared {}", t.name, shape_str(v.sizes().vec()),
           shape_str(t.shape));
    const std::string bytes = encode_tensor(v, t.type);
    if (bytes.size() != t.nbytes)
      fail("GGUF: tensor {}: {} bytes, expected {}", t.name, bytes.size(), t.nbytes);
    out.write(bytes);
    pos = offsets[i] + t.nbytes;
  }
  out.write(zeros.data(), align_up(pos, alignment_) - pos);
  out.commit();
}

}  // namespace reef
