// The pruned product for AVX-512: a tile of up to 32 rows of X is transposed once (K × 32
// floats). The weights are stored in K-blocks of 128 inputs, so the block's slice of the tile
// stays in L1 while the weights of every output column in that block are applied: per kept
// weight one broadcast and one fused multiply-add per 16 rows, four outputs interleaved to
// hide the FMA latency. Partial sums are carried from block to block in a column buffer and
// transposed back into row-major Y at the end. Every output adds its weights in ascending k,
// as the scalar reference does.
#include <immintrin.h>

#include "kernels/cpu/row_tile_avx512.h"
#include "kernels/cpu/sparse_kernels.h"

namespace lutmul::kernels {
namespace {

constexpr int kColumns = 4;  // outputs accumulated together

// Kernels for tiles of 16·V rows; a tail of up to 16 rows uses V = 1 so that it does not pay
// for 32. (64-row tiles measured no faster: the block's slice then fills L1.)
template <int V>
struct Tile {
  static constexpr int kRows = 16 * V;

  // tile: the block's slice of the transposed tile.
  static inline void add_weight(const float* tile, const SparseArgs& args, int64_t i, __m512* acc) {
    const float* x = tile + int64_t{args.offsets[i]} * kRows;
    const __m512 w = _mm512_set1_ps(args.values[i]);
    for (int v = 0; v < V; ++v) acc[v] = _mm512_fmadd_ps(_mm512_loadu_ps(x + 16 * v), w, acc[v]);
  }

  // Applies block `block`'s weights of every column to the partial sums (partial[m·kRows + r]).
  static void apply_block(const SparseArgs& args, const float* tile, int64_t block, float* partial) {
    const int64_t* start = args.segment_start + block * args.m;
    const float* slice = tile + block * kSparseBlockK * kRows;
    for (int64_t m0 = 0; m0 < args.m; m0 += kColumns) {
      const int count = args.m - m0 < kColumns ? static_cast<int>(args.m - m0) : kColumns;
      __m512 acc[kColumns][V];
      int64_t next[kColumns], end[kColumns];
      for (int c = 0; c < kColumns; ++c) {
        const int64_t m = m0 + (c < count ? c : 0);
        const float* sums = partial + m * kRows;
        for (int v = 0; v < V; ++v) acc[c][v] = block == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(sums + 16 * v);
        next[c] = start[m];
        end[c] = c < count ? start[m + 1] : next[c];
      }
      int64_t common = end[0] - next[0];
      for (int c = 1; c < kColumns; ++c) common = end[c] - next[c] < common ? end[c] - next[c] : common;
      for (int64_t step = 0; step < common; ++step)
        for (int c = 0; c < kColumns; ++c) add_weight(slice, args, next[c] + step, acc[c]);
      for (int c = 0; c < count; ++c) {
        for (int64_t i = next[c] + common; i < end[c]; ++i) add_weight(slice, args, i, acc[c]);
        float* sums = partial + (m0 + c) * kRows;
        for (int v = 0; v < V; ++v) _mm512_storeu_ps(sums + 16 * v, acc[c][v]);
      }
    }
  }

  // Y rows r0 .. r0 + rows (rows ≤ kRows). K ≥ 1, so there is at least one block and every
  // partial sum is written before it is read.
  static void run(const SparseArgs& args, int64_t r0, int rows) {
    float* tile = args.scratch;                      // K × kRows
    float* partial = args.scratch + args.k * kRows;  // M × kRows
    transpose_rows<kRows>(args.x, args.ldx, args.k, r0, rows, tile);
    for (int64_t block = 0; block < args.blocks; ++block) apply_block(args, tile, block, partial);
    store_column_sums<kRows>(partial, args.bias, args.m, args.y, args.ldy, r0, rows);
  }
};

void sparse_avx512(const SparseArgs& args, int64_t row_begin, int64_t row_end) {
  int64_t r0 = row_begin;
  for (; row_end - r0 >= Tile<2>::kRows; r0 += Tile<2>::kRows) Tile<2>::run(args, r0, Tile<2>::kRows);
  const int left = static_cast<int>(row_end - r0);
  if (left > 16) Tile<2>::run(args, r0, left);
  else if (left > 0) Tile<1>::run(args, r0, left);
}

}  // namespace

SparseFn sparse_avx512_kernel() { return sparse_avx512; }

}  // namespace lutmul::kernels
