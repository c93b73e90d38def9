// Hashing: xxHash64 of byte ranges (checkpoint integrity, cache keys).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace reef {

uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);
inline uint64_t xxh64(std::string_view s) { return xxh64(s.data(), s.size()); }
// xxh64 of a range of a read-only file mapping, hashed in chunks whose pages are released
// (release_mapped_pages) once hashed: checking a large file never holds it all in memory.
uint64_t xxh64_mapped(const void* data, size_t n);
// 16 lowercase hex digits.
std::string hex64(uint64_t v);

}  // namespace reef
