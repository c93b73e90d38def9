// Hashing: xxHash64 of byte ranges (checkpoint integrity, cache keys).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace reef {

uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);
inline uint64_t xxh64(std::string_view s) { return xxh64(s.data(), s.size()); }
// 16 lowercase hex digits.
std::string hex64(uint64_t v);

}  // namespace reef
