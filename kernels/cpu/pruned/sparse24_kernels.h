// Internal interface of the 2:4 semi-structured product kernels (Sparse24Linear). Checked by
// the caller; no throwing, no allocation.
#pragma once

#include <cstdint>

#include "kernels/cpu/pruned/row_tile_args.h"

namespace lutmul::kernels {

// Groups of four inputs per block: the kernels' slice of transposed X for one block
// (64 inputs × 128 rows = 32 KB) stays in L1 or close to it while every output's weights of
// the block are applied. The packed layout, and so the file format, depends on it.
constexpr int64_t kSparse24BlockGroups = 16;

// Packed weights, block by block (the last block may hold fewer groups, `count`):
//   values  [block][m][count][2] floats: the two kept weights of output m in each group,
//           the lower input first;
//   codes   [block][m][ceil(count / 2)] bytes: bits 0-1 and 2-3 are the positions (0-3) of
//           the two kept inputs in the even group of the pair, bits 4-7 the same for the odd.
struct Sparse24Layout {
  int64_t groups = 0;  // K / 4
  int64_t m = 0;

  int64_t blocks() const { return (groups + kSparse24BlockGroups - 1) / kSparse24BlockGroups; }
  int64_t count(int64_t block) const {
    const int64_t left = groups - block * kSparse24BlockGroups;
    return left < kSparse24BlockGroups ? left : kSparse24BlockGroups;
  }
  int64_t value_offset(int64_t block, int64_t column) const {
    return (block * kSparse24BlockGroups * m + column * count(block)) * 2;
  }
  int64_t code_offset(int64_t block, int64_t column) const {
    return block * (kSparse24BlockGroups / 2) * m + column * ((count(block) + 1) / 2);
  }
  int64_t value_count() const { return groups * m * 2; }
  int64_t code_count() const { return blocks() == 0 ? 0 : code_offset(blocks() - 1, m); }
};

// Position code (bits 0-1 first kept input, bits 2-3 second) of group `g` of a block whose
// codes for one column start at `codes`.
static inline int sparse24_code(const uint8_t* codes, int64_t g) { return (codes[g / 2] >> (4 * (g % 2))) & 15; }

struct Sparse24Args : RowTileArgs {
  Sparse24Layout layout;
  const float* values = nullptr;
  const uint8_t* codes = nullptr;
  // Scratch: sparse24_scratch_floats(layout) floats.
};

// Vectors of rows per tile (accumulators per output): 128 rows with AVX-512, 64 with AVX2.
constexpr int kSparse24TileVectors = 8;
// The most rows of any ISA's tile, which the scratch is sized for: callers hand the kernels
// chunks of at most this many.
constexpr int64_t kSparse24TileRows = 16 * kSparse24TileVectors;

// The transposed tile of X (K × kSparse24TileRows) and the partial sums (M × the same).
static inline int64_t sparse24_scratch_floats(const Sparse24Layout& layout) {
  return kSparse24TileRows * (4 * layout.groups + layout.m);
}

// y[r][m] = fma(x[r][4g+j1], w1, fma(x[r][4g+j0], w0, ...)) over groups g ascending, then
// + bias[m]: every kernel rounds exactly so.
using Sparse24Fn = void (*)(const Sparse24Args&, int64_t row_begin, int64_t row_end);

Sparse24Fn sparse24_scalar_kernel();
// Built only where the ISA is (LUTMUL_HAVE_*_KERNELS).
Sparse24Fn sparse24_avx2_kernel();
Sparse24Fn sparse24_avx512_kernel();
Sparse24Fn sparse24_neon_kernel();

}  // namespace lutmul::kernels
