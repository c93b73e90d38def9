// Implementation of safetensors.h: the header is parsed with nlohmann::json (a parse callback
// catches duplicate keys, which a JSON object silently merges), validated completely before any
// tensor is touched, and the file is mapped privately so tensors can be zero-copy views.
#include "reef/checkpoint/safetensors.h"

#include <fcntl.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <torch/version.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/hash.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

namespace reef {
namespace {

using nlohmann::json;

#define REEF_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||       \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  int size;  // bytes per element
  int rank;  // the reference writer's dtype order (ascending alignment); data is sorted by it
};

// Only dtypes this libtorch has: float8 arrived in 2.1, unsigned 16/32/64 in 2.3.
const std::vector<DtypeInfo>& dtype_table() {
  static const std::vector<DtypeInfo> table = {
    {"BOOL", torch::kBool, 1, 0},
    {"U8", torch::kByte, 1, 1},
    {"I8", torch::kChar, 1, 2},
#if REEF_TORCH_AT_LEAST(2, 1)
    {"F8_E5M2", torch::kFloat8_e5m2, 1, 3},
    {"F8_E4M3", torch::kFloat8_e4m3fn, 1, 4},
#endif
#if REEF_TORCH_AT_LEAST(2, 8)
    {"F8_E8M0", torch::kFloat8_e8m0fnu, 1, 5},
#endif
    {"I16", torch::kShort, 2, 6},
#if REEF_TORCH_AT_LEAST(2, 3)
    {"U16", torch::kUInt16, 2, 7},
#endif
    {"F16", torch::kHalf, 2, 8},
    {"BF16", torch::kBFloat16, 2, 9},
    {"I32", torch::kInt, 4, 10},
#if REEF_TORCH_AT_LEAST(2, 3)
    {"U32", torch::kUInt32, 4, 11},
#endif
    {"F32", torch::kFloat, 4, 12},
    {"C64", torch::kComplexFloat, 8, 13},
    {"F64", torch::kDouble, 8, 14},
    {"I64", torch::kLong, 8, 15},
#if REEF_TORCH_AT_LEAST(2, 3)
    {"U64", torch::kUInt64, 8, 16},
#endif
  };
  return table;
}

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : dtype_table())
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* find_dtype(torch::ScalarType type) {
  for (const auto& d : dtype_table())
    if (type == d.type) return &d;
  return nullptr;
}

const DtypeInfo& dtype_info(torch::ScalarType type) {
  const DtypeInfo* d = find_dtype(type);
  if (!d) fail("dtype {} has no safetensors equivalent", c10::toString(type));
  return *d;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace

struct SafetensorsFile::State {
  std::string path;
  uint8_t* map = nullptr;
  size_t map_size = 0;
  bool writable = false;  // private copy-on-write mapping: tensors may be views
  uint64_t data_offset = 0, data_size = 0;
  std::vector<std::string> keys;
  std::unordered_map<std::string, Entry> entries;
  std::map<std::string, std::string> metadata;

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    if (map) ::munmap(map, map_size);
  }
  [[noreturn]] void bad(const std::string& what) const {
    fail("invalid safetensors file {}: {}", path, what);
  }
  void map_file();
  void parse_header();
};

void SafetensorsFile::State::map_file() {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) usage_error("safetensors file {} does not exist", path);
    fail("cannot open safetensors file {}: {}", path, std::strerror(e));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot stat {}: {}", path, std::strerror(e));
  }
  map_size = static_cast<size_t>(st.st_size);
  if (map_size < 8) {
    ::close(fd);
    bad(fmt::format(
        "the file is {} bytes, shorter than the 8-byte header length (truncated, or not "
        "a safetensors file)",
        map_size));
  }
  // Private + writable lets tensor() hand out views that callers may modify in place; pages are
  // copied only when written. MAP_NORESERVE keeps a checkpoint larger than RAM + swap mappable.
  void* p = ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
  writable = p != MAP_FAILED;
  if (!writable) p = ::mmap(nullptr, map_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) fail("cannot mmap {}: {}", path, std::strerror(e));
  map = static_cast<uint8_t*>(p);
}

void SafetensorsFile::State::parse_header() {
  uint64_t n = 0;
  std::memcpy(&n, map, 8);
  if (n > map_size - 8)
    bad(fmt::format(
        "the header length is {} bytes but only {} bytes follow it (truncated, or not a "
        "safetensors file)",
        n, map_size - 8));
  data_offset = 8 + n;
  data_size = map_size - data_offset;

  // JSON objects merge duplicate keys silently; track the keys of every open object instead.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  const char* begin = reinterpret_cast<const char*>(map + 8);
  try {
    header = json::parse(begin, begin + n, callback);
  } catch (const json::exception& ex) {
    bad(fmt::format("the {}-byte header is not valid JSON: {}", n, ex.what()));
  }
  if (!duplicate.empty()) bad(fmt::format("duplicate key '{}' in the header", duplicate));
  if (!header.is_object()) bad("the header is not a JSON object");

  std::vector<std::pair<std::string, Entry>> list;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (v.is_null()) continue;
      if (!v.is_object()) bad("__metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          bad(fmt::format("__metadata__ value of '{}' is not a string", m.key()));
        metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto where = [&](const std::string& what) { bad(fmt::format("tensor '{}': {}", name, what)); };
    if (!v.is_object()) where("entry is not an object");
    auto dt = v.find("dtype"), sh = v.find("shape"), off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) where("missing or non-string \"dtype\"");
    const DtypeInfo* info = find_dtype(dt->get<std::string>());
    if (!info) where(fmt::format("unknown dtype '{}'", dt->get<std::string>()));
    if (sh == v.end() || !sh->is_array()) where("missing or non-array \"shape\"");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      where("\"data_offsets\" is not a pair of non-negative integers");
    Entry e;
    e.dtype = info->type;
    uint64_t bytes = static_cast<uint64_t>(info->size);
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t(INT64_MAX))
        where(
            fmt::format("shape {} holds something other than a non-negative integer", sh->dump()));
      if (__builtin_mul_overflow(bytes, d.get<uint64_t>(), &bytes))
        where(fmt::format("shape {} overflows", sh->dump()));
      e.shape.push_back(d.get<int64_t>());
    }
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.end < e.begin)
      where(fmt::format("data_offsets [{}, {}] end before they begin", e.begin, e.end));
    if (e.end - e.begin != bytes)
      where(fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}] span {}",
                        shape_str(e.shape), info->name, bytes, e.begin, e.end, e.end - e.begin));
    list.emplace_back(name, std::move(e));
  }

  // Data order; an empty tensor sorts before a non-empty one starting at the same offset.
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second.begin, a.second.end, a.first) <
           std::tie(b.second.begin, b.second.end, b.first);
  });
  for (const auto& [name, e] : list)
    if (e.end > data_size)
      bad(
          fmt::format("the file is truncated: tensor '{}' ends at data byte {} but the data buffer "
                      "holds only {} bytes",
                      name, e.end, data_size));
  uint64_t covered = 0;
  const std::string* prev = nullptr;
  for (const auto& [name, e] : list) {
    if (e.begin < covered)
      bad(fmt::format("tensor '{}' (data bytes [{}, {})) overlaps tensor '{}' (ending at {})", name,
                      e.begin, e.end, prev ? *prev : "", covered));
    if (e.begin > covered)
      bad(fmt::format("gap: data bytes [{}, {}) before tensor '{}' belong to no tensor", covered,
                      e.begin, name));
    covered = e.end;
    prev = &name;
  }
  if (covered != data_size)
    bad(fmt::format("gap: the last {} bytes of the data buffer belong to no tensor",
                    data_size - covered));
  keys.reserve(list.size());
  for (auto& [name, e] : list) {
    keys.push_back(name);
    entries.emplace(name, std::move(e));
  }
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto state = std::make_shared<State>();
  state->path = path;
  state->map_file();
  state->parse_header();
  SafetensorsFile f;
  f.state_ = std::move(state);
  return f;
}

const std::vector<std::string>& SafetensorsFile::keys() const { return state_->keys; }
bool SafetensorsFile::contains(const std::string& name) const {
  return state_->entries.count(name) > 0;
}
const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& name) const {
  auto it = state_->entries.find(name);
  if (it == state_->entries.end())
    fail("safetensors file {} has no tensor named '{}' (it holds {} tensors)", state_->path, name,
         state_->entries.size());
  return it->second;
}
std::vector<int64_t> SafetensorsFile::shape(const std::string& name) const {
  return entry(name).shape;
}
torch::ScalarType SafetensorsFile::dtype(const std::string& name) const {
  return entry(name).dtype;
}
const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
  return state_->metadata;
}
const std::string& SafetensorsFile::path() const { return state_->path; }
const uint8_t* SafetensorsFile::data() const { return state_->map + state_->data_offset; }
uint64_t SafetensorsFile::data_size() const { return state_->data_size; }

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const Entry& e = entry(name);
  auto options = torch::TensorOptions().dtype(e.dtype).device(torch::kCPU);
  uint8_t* src = state_->map + state_->data_offset + e.begin;
  size_t bytes = e.end - e.begin;
  size_t align = static_cast<size_t>(torch::elementSize(e.dtype));
  if (bytes > 0 && state_->writable && reinterpret_cast<uintptr_t>(src) % align == 0) {
    std::shared_ptr<const State> keep = state_;
    return torch::from_blob(
        src, e.shape, [keep](void*) {}, options);
  }
  torch::Tensor t = torch::empty(e.shape, options);
  if (bytes > 0) std::memcpy(t.data_ptr(), src, bytes);
  return t;
}

std::string safetensors_dtype_name(torch::ScalarType dtype) { return dtype_info(dtype).name; }

namespace {

// Throws "corrupted" when the recorded checksum disagrees; false when none is recorded.
bool check_checksum(const SafetensorsFile& f) {
  auto it = f.metadata().find(kSafetensorsChecksumKey);
  if (it == f.metadata().end()) return false;
  std::string actual = hex64(xxh64_mapped(f.data(), f.data_size()));
  if (actual != it->second)
    fail("safetensors file {} is corrupted: the data's xxh64 is {} but the header records {}",
         f.path(), actual, it->second);
  return true;
}

}  // namespace

bool verify_safetensors(const std::string& path) {
  return check_checksum(SafetensorsFile::open(path));
}

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  check_checksum(f);
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : f.keys()) {
    // Owned copies: a view would keep the whole file mapped for as long as any tensor lives.
    const auto& e = f.entry(name);
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), f.data() + e.begin, e.end - e.begin);
    out.emplace(name, std::move(t));
  }
  return out;
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  save_safetensors(path, tensors, metadata, /*checksum=*/false);
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata, bool checksum) {
  struct Item {
    const std::string* name;
    const DtypeInfo* info;
    torch::Tensor cpu;  // contiguous, CPU, conjugation and negation resolved
    uint64_t bytes;
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail("cannot save {}: \"__metadata__\" is not a tensor name", path);
    if (!seen.insert(name).second) fail("cannot save {}: duplicate tensor name '{}'", path, name);
    if (!t.defined()) fail("cannot save {}: tensor '{}' is undefined", path, name);
    const DtypeInfo* info = find_dtype(t.scalar_type());
    if (!info)
      fail("cannot save {}: tensor '{}' has dtype {}, which safetensors cannot hold", path, name,
           c10::toString(t.scalar_type()));
    torch::Tensor cpu = t.detach().to(torch::kCPU).resolve_conj().resolve_neg().contiguous();
    items.push_back({&name, info, cpu, static_cast<uint64_t>(cpu.numel()) * info->size});
  }
  // The reference writer's order: larger alignment first, then name; keeps data aligned.
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.info->rank != b.info->rank ? a.info->rank > b.info->rank : *a.name < *b.name;
  });

  std::map<std::string, std::string> meta = metadata;
  if (checksum) {
    XXH64_state_t* h = XXH64_createState();
    XXH64_reset(h, 0);
    for (const auto& it : items)
      if (it.bytes > 0) XXH64_update(h, it.cpu.data_ptr(), it.bytes);
    meta[kSafetensorsChecksumKey] = hex64(XXH64_digest(h));
    XXH64_freeState(h);
  }
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!meta.empty()) header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const auto& it : items) {
    auto& entry = header[*it.name];
    entry["dtype"] = it.info->name;
    entry["shape"] = it.cpu.sizes().vec();
    entry["data_offsets"] = {offset, offset + it.bytes};
    offset += it.bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& ex) {
    fail("cannot save {}: a tensor name or metadata string is not valid UTF-8 ({})", path,
         ex.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // aligns the data buffer to 8 bytes

  AtomicFileWriter w(path);
  uint64_t n = text.size();
  w.write(&n, 8);
  w.write(text);
  for (const auto& it : items)
    if (it.bytes > 0) w.write(it.cpu.data_ptr(), it.bytes);
  w.commit();
  std::string dir = std::filesystem::path(path).parent_path().string();
  fsync_dir(dir.empty() ? "." : dir);
}

}  // namespace reef
