// Shared by the pruned-product kernels, which put rows of X in vector lanes: moving a tile of
// rows of X into input-major order, and moving per-output column sums back into row-major Y.
// Written once over an ISA's primitives (simd_*.h, Ops::kLanes rows per vector); include only
// from a file built for that ISA.
#pragma once

#include <cstdint>

namespace lutmul::kernels {
namespace {

// tile[k·kRows + r] = x[(r0 + r)·ldx + k] for k < K, r < kRows; rows past `rows` repeat r0.
template <class Ops, int kRows>
inline void transpose_rows(const float* x_base, int64_t ldx, int64_t k, int64_t r0, int rows, float* tile) {
  constexpr int L = Ops::kLanes;
  for (int part = 0; part < kRows / L; ++part) {
    const float* x[L];
    for (int i = 0; i < L; ++i) {
      const int r = L * part + i;
      x[i] = x_base + (r0 + (r < rows ? r : 0)) * ldx;
    }
    int64_t k0 = 0;
    for (; k0 + L <= k; k0 += L) {
      typename Ops::Floats in[L];
      for (int i = 0; i < L; ++i) in[i] = Ops::load_floats(x[i] + k0);
      Ops::transpose_store(in, tile + k0 * kRows + L * part, kRows, L, L);
    }
    for (; k0 < k; ++k0)
      for (int i = 0; i < L; ++i) tile[k0 * kRows + L * part + i] = x[i][k0];
  }
}

// y[(r0 + r)·ldy + m] = sums[m·kRows + r] + bias[m] for r < rows, m < M, L × L at a time.
template <class Ops, int kRows>
inline void store_column_sums(const float* sums, const float* bias, int64_t m, float* y, int64_t ldy, int64_t r0,
                              int rows) {
  constexpr int L = Ops::kLanes;
  for (int64_t m0 = 0; m0 < m; m0 += L) {
    const int count = m - m0 < L ? static_cast<int>(m - m0) : L;
    for (int v = 0; v < kRows / L && L * v < rows; ++v) {
      typename Ops::Floats out[L];
      for (int j = 0; j < L; ++j)
        out[j] = j < count ? Ops::add_floats(Ops::load_aligned(sums + (m0 + j) * kRows + L * v), Ops::broadcast(bias[m0 + j]))
                           : Ops::zero_floats();
      const int left = rows - L * v;
      Ops::transpose_store(out, y + (r0 + L * v) * ldy + m0, ldy, left < L ? left : L, count);
    }
  }
}

// The rows left after the full tiles (0 ≤ left < Tile<Ops, V>::kRows) in the smallest tile of
// a power-of-two V that holds them, so they do not pay for more.
template <template <class, int> class Tile, class Ops, int V, class Args>
inline void run_tail_rows(const Args& args, int64_t r0, int left) {
  if (left <= 0) return;
  if constexpr (V > 1) {
    if (left <= Ops::kLanes * (V / 2)) return run_tail_rows<Tile, Ops, V / 2>(args, r0, left);
  }
  Tile<Ops, V>::run(args, r0, left);
}

// Rows [row_begin, row_end): full tiles of Tile<Ops, kFull> (kFull a power of two), then the rest.
template <template <class, int> class Tile, class Ops, int kFull, class Args>
inline void run_rows_in_tiles(const Args& args, int64_t row_begin, int64_t row_end) {
  using Full = Tile<Ops, kFull>;
  int64_t r0 = row_begin;
  for (; row_end - r0 >= Full::kRows; r0 += Full::kRows) Full::run(args, r0, Full::kRows);
  run_tail_rows<Tile, Ops, kFull>(args, r0, static_cast<int>(row_end - r0));
}

}  // namespace
}  // namespace lutmul::kernels
