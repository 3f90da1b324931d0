// Test-only stand-in for <cuda_runtime.h>: lets lutmul's .cu kernels (rewritten by to_cpp.py:
// launches become emu::launch, dynamic shared arrays emu::dynamic_shared) compile as plain
// C++ and run on the CPU. Each CUDA thread is a fiber; a block's fibers run one at a time,
// switching only at barriers and warp collectives, in a shuffled order per phase, so a
// missing barrier shows up as a wrong result. Warp collectives require every live lane of
// the warp (full masks, as the kernels use them); a barrier that some threads of a block or
// warp never reach is reported, as is a collective that lanes reach with different ops.
// Not a simulator of timing or memory spaces: device memory is host memory.
#pragma once

#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <math.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

// host_defines.h (through cuda_runtime_api.h) defines these for host compilers; here they
// must mean plain C++.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local  // one block at a time per host thread

namespace emu {

const uint3& thread_index();
const uint3& block_index();
const dim3& block_dim();
const dim3& grid_dim();
void* dynamic_shared();

void sync_threads();
enum class WarpOp { sync, shfl, shfl_up, shfl_xor, all, any, match_any };
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg);

// Runs a grid: calls body(block) once per thread of each block. Returns a launch error or
// cudaSuccess (and records it for cudaGetLastError).
cudaError_t run_grid(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);

template <typename... Params>
struct Launch {
  void (*kernel)(Params...);
  dim3 grid, block;
  size_t shared_bytes;
  template <typename... Args>
  void operator()(Args&&... args) const {
    std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
    run_grid(reinterpret_cast<const void*>(kernel), grid, block, shared_bytes, [&] {
      auto copy = values;  // every thread gets its own copy of the parameters
      std::apply(kernel, copy);
    });
  }
};
template <typename... Params>
Launch<Params...> launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes = 0,
                         cudaStream_t = nullptr) {
  return Launch<Params...>{kernel, grid, block, shared_bytes};
}

template <typename T>
uint64_t bits(T v) {
  static_assert(sizeof(T) <= 8, "warp values up to 64 bits");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace emu

#define threadIdx (::emu::thread_index())
#define blockIdx (::emu::block_index())
#define blockDim (::emu::block_dim())
#define gridDim (::emu::grid_dim())

inline void __syncthreads() { emu::sync_threads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::warp_collective(emu::WarpOp::sync, mask, 0, 0); }
template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int = 32) {
  return emu::from_bits<T>(emu::warp_collective(emu::WarpOp::shfl, mask, emu::bits(v), src));
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int = 32) {
  return emu::from_bits<T>(emu::warp_collective(emu::WarpOp::shfl_up, mask, emu::bits(v), static_cast<int>(delta)));
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int = 32) {
  return emu::from_bits<T>(emu::warp_collective(emu::WarpOp::shfl_xor, mask, emu::bits(v), lane_mask));
}
inline int __all_sync(unsigned mask, int p) { return static_cast<int>(emu::warp_collective(emu::WarpOp::all, mask, p != 0, 0)); }
inline int __any_sync(unsigned mask, int p) { return static_cast<int>(emu::warp_collective(emu::WarpOp::any, mask, p != 0, 0)); }
template <typename T>
unsigned __match_any_sync(unsigned mask, T v) {
  return static_cast<unsigned>(emu::warp_collective(emu::WarpOp::match_any, mask, emu::bits(v), 0));
}

namespace emu {
[[noreturn]] void misaligned(const void* p, size_t alignment);
}
// A GPU faults on a misaligned load; so does the emulator, loudly.
template <typename T>
T __ldg(const T* p) {
  if (reinterpret_cast<uintptr_t>(p) % alignof(T) != 0) emu::misaligned(p, alignof(T));
  return *p;
}
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  const uint64_t bytes = uint64_t{x} | (uint64_t{y} << 32);
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<unsigned>((bytes >> (8 * ((s >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return r;
}
inline int __dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) c += static_cast<int8_t>(a >> (8 * i)) * static_cast<int8_t>(b >> (8 * i));
  return c;
}
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __fmul_rn(float a, float b) { return a * b; }  // built with -ffp-contract=off
inline float __fadd_rn(float a, float b) { return a + b; }
inline int atomicAdd(int* p, int v) { const int old = *p; *p = old + v; return old; }
inline float atomicAdd(float* p, float v) { const float old = *p; *p = old + v; return old; }

// CUDA's integer min/max overloads accept mixed widths of the same signedness.
template <typename A, typename B>
std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
template <typename A, typename B>
std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }

// The C++ runtime API's kernel-pointer overloads.
template <typename T>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, T* kernel) {
  return cudaFuncGetAttributes(attributes, reinterpret_cast<const void*>(kernel));
}
template <typename T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attribute, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attribute, value);
}
template <typename T>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, T* kernel, int threads, size_t shared) {
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, reinterpret_cast<const void*>(kernel), threads, shared);
}
