// Bytes whose first one starts a cache line: MADDNESS's 8-bit lookup tables, which the
// AVX-512 VBMI scans read as whole 64-byte lines, one load per lookup instruction (a load that
// straddles two lines costs about as much as the lookup itself on Sapphire Rapids).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace lutmul {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};

  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, kAlignment); }

  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const noexcept {
    return false;
  }
};

using CacheLineBytes = std::vector<uint8_t, CacheLineAllocator<uint8_t>>;

}  // namespace lutmul
