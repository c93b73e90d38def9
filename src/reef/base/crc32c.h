// CRC-32C (Castagnoli), the checksum TFRecord framing uses for TensorBoard event files. Kept apart
// from tensorboard.h so other record formats can share it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace reef {

// CRC-32C of n bytes ("123456789" -> 0xE3069283).
uint32_t crc32c(const void* data, size_t n);
// Continues a CRC-32C: crc32c_extend(crc32c(a), b) == crc32c(a + b).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);
// TFRecord's masked form, so that a CRC stored next to the bytes it covers is not itself a
// likely-looking CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t crc32c_mask(uint32_t crc);

}  // namespace reef
