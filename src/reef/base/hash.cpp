// xxHash64 through Debian's libxxhash.
#include "reef/base/hash.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>

#include "reef/base/files.h"

namespace reef {

uint64_t xxh64(const void* data, size_t n, uint64_t seed) { return XXH64(data, n, seed); }

uint64_t xxh64_mapped(const void* data, size_t n) {
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  const auto* p = static_cast<const uint8_t*>(data);
  constexpr size_t kChunk = size_t{64} << 20;
  for (size_t off = 0; off < n; off += kChunk) {
    const size_t len = std::min(kChunk, n - off);
    XXH64_update(st, p + off, len);
    release_mapped_pages(p + off, len);
  }
  const uint64_t h = XXH64_digest(st);
  XXH64_freeState(st);
  return h;
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace reef
