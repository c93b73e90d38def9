// GGUF v3 writer (ggml's docs/gguf.md): the little-endian header ("GGUF", version 3, tensor
// count, KV count), the typed metadata KVs, the tensor infos (name, dims in ggml order = torch's
// reversed, ggml type, offset from the data section), padding to `general.alignment`, then the
// tensor data, each tensor aligned. Tensors are declared with a producer that is called only
// while the data section is written, so one tensor at a time is converted and held, and the file
// is streamed through AtomicFileWriter (nothing is left behind when an error interrupts it).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace reef {

// The ggml tensor types the writer encodes (values are ggml's enum ggml_type).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ6_K = 14,
  kBF16 = 30
};

// GGUF metadata value types (gguf_type).
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr int64_t kQ8BlockSize = 32;  // values per q8_0 block: fp16 scale + 32 int8
inline constexpr int64_t kQ4BlockSize = 32;  // values per q4_0 block: fp16 scale + 16 bytes

const char* ggml_type_name(GgmlType t);
// Bytes a tensor of `numel` values takes in type `t` (q8_0: numel must be a multiple of 32).
uint64_t ggml_nbytes(GgmlType t, int64_t numel);

// q4_0 blocks of `n` floats (n a multiple of 32), as ggml's reference quantizer and gguf-py:
// per block d = (the value of largest magnitude, first on ties) / -8 stored as fp16, and
// q = min(15, trunc(x * (1/d) + 8.5)) in float32 (1/d = 0 when d is 0), values j and j + 16
// packed into byte j (low nibble first); each block is 2 + 16 bytes.
std::string quantize_q4_0(const float* x, int64_t n);

// q8_0 blocks of `n` floats (n a multiple of 32), as ggml's reference quantizer: per block
// d = max|x| / 127 stored as fp16, q = roundf(x / d) computed as x * (1/d) in float32 (0 when d
// is 0); each block is 2 + 32 bytes.
std::string quantize_q8_0(const float* x, int64_t n);

// The bytes of `t` (any floating dtype, any device) in ggml type `t`: f32/f16/bf16 by torch's
// round-to-nearest-even conversion, q8_0 by quantize_q8_0 over the row-major values.
std::string encode_tensor(const torch::Tensor& t, GgmlType type);

class GgufWriter {
 public:
  void add_uint32(const std::string& key, uint32_t v);
  void add_int32(const std::string& key, int32_t v);
  void add_uint64(const std::string& key, uint64_t v);
  void add_float32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_int32_array(const std::string& key, const std::vector<int32_t>& v);
  void add_float32_array(const std::string& key, const std::vector<float>& v);

  // Declares a tensor. `shape` is in torch order (outermost first); the file stores it reversed.
  // `produce` returns the values (any floating dtype) of that shape when the data is written.
  void add_tensor(const std::string& name, std::vector<int64_t> shape, GgmlType type,
                  std::function<torch::Tensor()> produce);

  // general.alignment when set through add_uint32 (default 32). Must be a power of two.
  uint32_t alignment() const { return alignment_; }
  size_t kv_count() const { return kvs_.size(); }
  size_t tensor_count() const { return tensors_.size(); }

  // Writes the whole file atomically to `path`. Duplicate keys or tensor names, or a producer
  // whose tensor does not have the declared shape, are errors and leave no file.
  void write(const std::string& path) const;

 private:
  struct Kv {
    std::string key;
    std::string encoded;  // value type + value, already serialized
  };
  struct TensorDecl {
    std::string name;
    std::vector<int64_t> shape;
    GgmlType type;
    std::function<torch::Tensor()> produce;
    uint64_t nbytes, offset;
  };
  void add_kv(const std::string& key, std::string encoded);

  std::vector<Kv> kvs_;
  std::vector<TensorDecl> tensors_;
  uint32_t alignment_ = kGgufDefaultAlignment;
};

}  // namespace reef
