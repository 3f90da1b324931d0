// Internal: CRC-32 (IEEE 802.3, the zlib polynomial) for model files.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lutmul::detail {
uint32_t crc32(const uint8_t* data, size_t size);
}
