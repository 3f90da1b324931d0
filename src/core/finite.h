// Internal: a fast all-finite test for float buffers (a bit test the compiler vectorises;
// std::isfinite in a short-circuit loop does not).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lutmul::detail {

inline bool all_finite(const float* values, size_t count) {
  uint32_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, sizeof bits);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);  // exponent all ones: inf or NaN
  }
  return bad == 0;
}

}  // namespace lutmul::detail
