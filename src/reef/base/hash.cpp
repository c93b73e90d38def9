// xxHash64 through Debian's libxxhash.
#include "reef/base/hash.h"

#include <fmt/format.h>
#include <xxhash.h>

namespace reef {

uint64_t xxh64(const void* data, size_t n, uint64_t seed) { return XXH64(data, n, seed); }

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace reef
