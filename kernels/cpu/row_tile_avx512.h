// Shared by the AVX-512 pruned-product kernels, which put rows of X in vector lanes: moving a
// tile of rows of X into input-major order, and moving per-output column sums back into
// row-major Y. Include only from files built with AVX-512 flags.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/simd_avx512.h"

namespace lutmul::kernels {

// tile[k·kRows + r] = x[(r0 + r)·ldx + k] for k < K, r < kRows; rows past `rows` repeat r0.
template <int kRows>
inline void transpose_rows(const float* x_base, int64_t ldx, int64_t k, int64_t r0, int rows, float* tile) {
  for (int part = 0; part < kRows / 16; ++part) {
    const float* x[16];
    for (int i = 0; i < 16; ++i) {
      const int r = 16 * part + i;
      x[i] = x_base + (r0 + (r < rows ? r : 0)) * ldx;
    }
    int64_t k0 = 0;
    for (; k0 + 16 <= k; k0 += 16) {
      __m512 in[16];
      for (int i = 0; i < 16; ++i) in[i] = _mm512_loadu_ps(x[i] + k0);
      Avx512Ops::transpose_store(in, tile + k0 * kRows + 16 * part, kRows, 16, 16);
    }
    for (; k0 < k; ++k0)
      for (int i = 0; i < 16; ++i) tile[k0 * kRows + 16 * part + i] = x[i][k0];
  }
}

// y[(r0 + r)·ldy + m] = sums[m·kRows + r] + bias[m] for r < rows, m < M, 16 × 16 at a time.
template <int kRows>
inline void store_column_sums(const float* sums, const float* bias, int64_t m, float* y, int64_t ldy, int64_t r0,
                              int rows) {
  for (int64_t m0 = 0; m0 < m; m0 += 16) {
    const int count = m - m0 < 16 ? static_cast<int>(m - m0) : 16;
    for (int v = 0; v < kRows / 16 && 16 * v < rows; ++v) {
      __m512 out[16];
      for (int j = 0; j < 16; ++j)
        out[j] = j < count ? _mm512_add_ps(_mm512_loadu_ps(sums + (m0 + j) * kRows + 16 * v), _mm512_set1_ps(bias[m0 + j]))
                           : _mm512_setzero_ps();
      const int left = rows - 16 * v;
      Avx512Ops::transpose_store(out, y + (r0 + 16 * v) * ldy + m0, ldy, left < 16 ? left : 16, count);
    }
  }
}

}  // namespace lutmul::kernels
