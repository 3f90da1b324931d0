// Test-only stand-in for <cuda_fp16.h> (see cuda_runtime.h here): GCC's _Float16 rounds to
// nearest even, as __float2half_rn does.
#pragma once

#include <cstdint>
#include <cstring>

struct __half {
  uint16_t bits;
};
inline __half __float2half_rn(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  __half r;
  std::memcpy(&r.bits, &h, 2);
  return r;
}
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
