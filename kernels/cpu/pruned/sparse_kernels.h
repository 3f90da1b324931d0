// Internal interface of the sparse (pruned) product kernels. Checked by the caller; no
// throwing, no allocation.
#pragma once

#include <cstdint>

#include "kernels/cpu/pruned/row_tile_args.h"

namespace lutmul::kernels {

struct SparseArgs : RowTileArgs {
  int64_t k = 0;
  int64_t m = 0;
  // Kept weights in K-blocks of kSparseBlockK inputs: segment b·M + m holds column m's
  // weights with k in block b, ascending k, at [segment_start[b·M + m], segment_start[b·M + m + 1]).
  int64_t blocks = 0;                      // ceil(K / kSparseBlockK)
  const int64_t* segment_start = nullptr;  // blocks·M + 1
  // Input of each kept weight within its block, k − b·kSparseBlockK: a byte, so that the
  // weights' stream, read once per tile of rows, is 5 bytes a weight rather than 8.
  const uint8_t* offsets = nullptr;
  const float* values = nullptr;
  // Scratch: sparse_scratch_floats(k, m) floats.
};

// Inputs per block: 64 rows × 128 inputs of transposed X are 32 KB, which stays in L1 or
// close to it while every output column's weights of that block are applied.
constexpr int64_t kSparseBlockK = 128;
// Vectors of rows per tile (accumulators per output): 64 rows with AVX-512, 32 with AVX2.
constexpr int kSparseTileVectors = 4;
// The most rows of any ISA's tile, which the scratch is sized for: callers hand the kernels
// chunks of at most this many.
constexpr int64_t kSparseTileRows = 16 * kSparseTileVectors;
static_assert(kSparseBlockK <= 256, "offsets in a block are bytes");

// y[r][m] = fma(x[r][k_last], w_last, ... fma(x[r][k_first], w_first, 0)) + bias[m], the
// kept weights of column m in ascending k (block by block): every kernel rounds exactly so.
using SparseFn = void (*)(const SparseArgs&, int64_t row_begin, int64_t row_end);

// The transposed tile (K × kSparseTileRows) and the partial sums (M × the same).
static inline int64_t sparse_scratch_floats(int64_t k, int64_t m) { return kSparseTileRows * (k + m); }

SparseFn sparse_scalar_kernel();
// Built only where the ISA is (LUTMUL_HAVE_*_KERNELS).
SparseFn sparse_avx2_kernel();
SparseFn sparse_avx512_kernel();
SparseFn sparse_neon_kernel();

}  // namespace lutmul::kernels
