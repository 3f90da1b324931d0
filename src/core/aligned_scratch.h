// Internal: cache-line aligned float scratch for the kernels' transposed tiles. Plain new[]
// of a large buffer returns memory 16 bytes past a page (glibc's mmap header) or anywhere on
// the heap, so every 64-byte vector load of a tile would straddle two cache lines, or not,
// depending on what the process allocated before: the 2:4 kernel ran 1.35x slower so.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace lutmul::detail {

constexpr std::align_val_t kCacheLine{64};

struct AlignedFloatsDeleter {
  void operator()(float* p) const { ::operator delete[](p, kCacheLine); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedFloatsDeleter>;

inline AlignedFloats aligned_floats(size_t count) { return AlignedFloats(new (kCacheLine) float[count]); }

}  // namespace lutmul::detail
