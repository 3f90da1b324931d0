// Internal interface of the int8 GEMM kernels (Int8Linear). Arguments are checked by the
// caller; kernels never throw and allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lutmul::kernels {

constexpr int kInt8TileOutputs = 16;  // outputs per packed weight tile
constexpr int kInt8KGroup = 4;        // k values per 32-bit lane (vpdpbusd)

struct Int8QuantizeArgs {
  const float* x = nullptr;  // row-major, leading dimension ldx
  int64_t ldx = 0;
  int64_t k = 0;         // real K
  int64_t k_padded = 0;  // multiple of 4; padded entries get the zero point
  bool dynamic = true;   // per-row scale, else static_inverse / static_scale
  float static_inverse = 1.f;
  float static_scale = 1.f;
  const float* column_inverse = nullptr;  // k: each x_k times 1/s[k] first; null: none
  uint8_t* out = nullptr;  // rows × k_padded: x_q + 128
  float* scales = nullptr; // rows: s_x
};

struct Int8GemmArgs {
  const uint8_t* x = nullptr;  // rows × k_padded, x_q + 128
  int64_t k_padded = 0;
  int64_t m = 0;                 // real M (outputs written)
  int64_t tiles = 0;             // m_padded / 16
  const int8_t* packed = nullptr;        // [k_padded/4][tiles][16][4]
  const int32_t* column_sums = nullptr;  // m_padded: Σ_k w_q
  const float* row_scales = nullptr;     // rows
  const float* weight_scales = nullptr;  // m_padded
  const float* bias = nullptr;           // m_padded
  float* y = nullptr;
  int64_t ldy = 0;
};

// Y from exact integer sums made elsewhere (oneDNN's u8·s8 product): the gemm kernels'
// epilogue on its own, with the same two roundings.
struct Int8EpilogueArgs {
  const int32_t* sums = nullptr;  // rows × m, row-major: Σ_k (x_q + 128)·w_q
  int64_t m = 0;
  const int32_t* column_sums = nullptr;  // m: Σ_k w_q
  const float* row_scales = nullptr;     // rows
  const float* weight_scales = nullptr;  // m
  const float* bias = nullptr;           // m
  float* y = nullptr;
  int64_t ldy = 0;
};

// Quantizes rows [row_begin, row_end); returns false if any value read was not finite.
using Int8QuantizeFn = bool (*)(const Int8QuantizeArgs&, int64_t row_begin, int64_t row_end);
// y for rows [row_begin, row_end) (indices into x / row_scales / y) and output tiles
// [tile_begin, tile_end).
using Int8GemmFn = void (*)(const Int8GemmArgs&, int64_t row_begin, int64_t row_end, int64_t tile_begin,
                            int64_t tile_end);

// y for rows [row_begin, row_end) (indices into sums / row_scales / y).
using Int8EpilogueFn = void (*)(const Int8EpilogueArgs&, int64_t row_begin, int64_t row_end);

struct Int8KernelTable {
  Int8QuantizeFn quantize;
  Int8GemmFn gemm;
  Int8EpilogueFn epilogue;
};

// The quantised rows r0 .. r0 + kRows − 1 of a GEMM's X, for the micro-kernels that take
// kRows rows at a time: rows past row_end repeat r0, so every load stays inside X. Returns how
// many are real. Static: included by files built for different ISAs.
template <int kRows>
static inline int int8_row_group(const Int8GemmArgs& args, int64_t r0, int64_t row_end, const uint8_t* (&x)[kRows]) {
  const int rows = row_end - r0 < kRows ? static_cast<int>(row_end - r0) : kRows;
  for (int r = 0; r < kRows; ++r) x[r] = args.x + (r0 + (r < rows ? r : 0)) * args.k_padded;
  return rows;
}

const Int8KernelTable& int8_scalar_kernels();
// Each is declared where it is built (x86-64); callers check the CPU first.
const Int8KernelTable* int8_vnni_kernels();           // AVX-512 VNNI (512-bit vpdpbusd)
const Int8KernelTable* int8_avxvnni_kernels();        // AVX-VNNI (VEX 256-bit vpdpbusd)
const Int8KernelTable* int8_vnni_ymm_evex_kernels();  // the same with EVEX encoding, for tests
const Int8KernelTable* int8_avx2_kernels();           // AVX2 vpmaddwd

}  // namespace lutmul::kernels
