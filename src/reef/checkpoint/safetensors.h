// safetensors, read and written natively to the format's spec (huggingface/safetensors): an
// 8-byte little-endian header length N, N bytes of JSON header ({name: {dtype, shape,
// data_offsets}}, optional "__metadata__" of strings) padded with spaces to a multiple of 8, then
// the data buffer. Reef checkpoints are Hugging Face folders, so this is the weights format.
//
// Writing follows the reference writer exactly: tensors sorted by dtype alignment (largest
// first, in the reference's dtype order) then by name, so every tensor's data is aligned to its
// element size; "__metadata__" (keys sorted) comes first in the header; compact JSON. For the
// same tensors and at most one metadata key the bytes equal `safetensors.torch.save_file`'s.
//
// Reading validates the whole header at open and reports every defect as a reef::Error naming
// the file and the problem: too short, header size beyond the file, invalid JSON, duplicate
// keys, unknown dtype, bad shape or offsets, size mismatch, truncation, overlaps, gaps.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace reef {

// The metadata key under which save_safetensors(..., checksum=true) records the xxh64 (16 hex
// digits) of the data buffer.
inline constexpr const char* kSafetensorsChecksumKey = "reef.xxh64";

// Atomic (temp + rename). Tensors may be on any device/dtype; written as their dtype, contiguous,
// CPU. Duplicate names and dtypes safetensors cannot hold are errors.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Same, and with checksum=true also records the data buffer's xxh64 in __metadata__.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata, bool checksum);

// Reads everything into owned CPU tensors. When the file carries a "reef.xxh64" checksum it is
// verified first (a mismatch throws "corrupted").
std::map<std::string, torch::Tensor> load_safetensors(const std::string& path);

// Recomputes the data buffer's xxh64 and compares it with the recorded one. Returns true when
// it matched, false when the file records no checksum; throws reef::Error ("corrupted") on a
// mismatch or when the file is malformed.
bool verify_safetensors(const std::string& path);

// mmap-backed reader; the header is fully validated at open (the data is not read then).
// tensor() returns a zero-copy CPU view into a private copy-on-write mapping of the file. The view
// keeps the mapping alive after every SafetensorsFile copy is gone; a file replaced on disk (by
// rename, as our writers do) does not change it; in-place writes to it never reach the file but
// ARE seen by later tensor() calls on this SafetensorsFile (and its copies), like any view of
// shared storage: clone() before writing when that matters. tensor() returns an owned copy
// instead when the data is not aligned to its element size (headers from writers that do not
// pad) or when the kernel refuses a writable private mapping. Cheap to copy (shared state);
// a default-constructed SafetensorsFile is empty and only good for assigning to.
class SafetensorsFile {
 public:
  struct Entry {
    torch::ScalarType dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // byte offsets relative to the data buffer
  };

  static SafetensorsFile open(const std::string& path);
  const std::vector<std::string>& keys() const;  // in file (data offset) order
  bool contains(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;
  torch::ScalarType dtype(const std::string& name) const;
  const Entry& entry(const std::string& name) const;
  torch::Tensor tensor(const std::string& name) const;  // throws naming the file if absent
  const std::map<std::string, std::string>& metadata() const;
  const std::string& path() const;
  // The raw data buffer (everything after the header), e.g. for checksums.
  const uint8_t* data() const;
  uint64_t data_size() const;

 private:
  struct State;
  std::shared_ptr<const State> state_;
};

// The safetensors dtype string ("BF16") for a torch dtype; throws for dtypes it cannot hold.
std::string safetensors_dtype_name(torch::ScalarType dtype);

}  // namespace reef
