// The 2:4 product for AVX-512, rows of X in vector lanes: a tile of up to 64 rows is
// transposed once, then for each block of 64 inputs (16 KB of the tile, in L1) every output
// applies its two kept weights per group of four inputs as broadcast fused multiply-adds on
// the tile rows its 2-bit positions select, four outputs interleaved to hide the FMA latency.
// The selection is address arithmetic, so no shuffle competes with the FMAs. Partial sums
// are carried from block to block per output and moved into row-major Y at the end.
#include <immintrin.h>

#include "kernels/cpu/row_tile_avx512.h"
#include "kernels/cpu/sparse24_kernels.h"

namespace lutmul::kernels {
namespace {

constexpr int kColumns = 4;  // outputs accumulated together

template <int V>
struct Tile {
  static constexpr int kRows = 16 * V;

  static inline void add_weight(const float* x, float weight, __m512* acc) {
    const __m512 w = _mm512_set1_ps(weight);
    for (int v = 0; v < V; ++v) acc[v] = _mm512_fmadd_ps(_mm512_loadu_ps(x + 16 * v), w, acc[v]);
  }

  static void apply_block(const Sparse24Args& args, const float* tile, int64_t block, float* partial) {
    const Sparse24Layout& layout = args.layout;
    const int64_t count = layout.count(block);
    const float* tile_block = tile + 4 * block * kSparse24BlockGroups * kRows;
    for (int64_t m0 = 0; m0 < layout.m; m0 += kColumns) {
      const int columns = layout.m - m0 < kColumns ? static_cast<int>(layout.m - m0) : kColumns;
      __m512 acc[kColumns][V];
      const float* values[kColumns];
      const uint8_t* codes[kColumns];
      for (int c = 0; c < kColumns; ++c) {
        const int64_t m = m0 + (c < columns ? c : 0);
        for (int v = 0; v < V; ++v)
          acc[c][v] = block == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(partial + m * kRows + 16 * v);
        values[c] = args.values + layout.value_offset(block, m);
        codes[c] = args.codes + layout.code_offset(block, m);
      }
      for (int64_t g = 0; g < count; ++g) {
        const float* x = tile_block + 4 * g * kRows;
        for (int c = 0; c < kColumns; ++c) {
          const int code = sparse24_code(codes[c], g);
          add_weight(x + (code & 3) * kRows, values[c][2 * g], acc[c]);
          add_weight(x + (code >> 2) * kRows, values[c][2 * g + 1], acc[c]);
        }
      }
      for (int c = 0; c < columns; ++c)
        for (int v = 0; v < V; ++v) _mm512_storeu_ps(partial + (m0 + c) * kRows + 16 * v, acc[c][v]);
    }
  }

  // Y rows r0 .. r0 + rows (rows ≤ kRows). K ≥ 4, so there is at least one block and every
  // partial sum is written before it is read.
  static void run(const Sparse24Args& args, int64_t r0, int rows) {
    const int64_t k = 4 * args.layout.groups;
    float* tile = args.scratch;                 // K × kRows
    float* partial = args.scratch + k * kRows;  // M × kRows
    transpose_rows<kRows>(args.x, args.ldx, k, r0, rows, tile);
    for (int64_t block = 0; block < args.layout.blocks(); ++block) apply_block(args, tile, block, partial);
    store_column_sums<kRows>(partial, args.bias, args.layout.m, args.y, args.ldy, r0, rows);
  }
};

void sparse24_avx512(const Sparse24Args& args, int64_t row_begin, int64_t row_end) {
  constexpr int kFull = Tile<4>::kRows;
  int64_t r0 = row_begin;
  for (; row_end - r0 >= kFull; r0 += kFull) Tile<4>::run(args, r0, kFull);
  const int left = static_cast<int>(row_end - r0);
  if (left > 32) Tile<4>::run(args, r0, left);
  else if (left > 16) Tile<2>::run(args, r0, left);
  else if (left > 0) Tile<1>::run(args, r0, left);
}

}  // namespace

Sparse24Fn sparse24_avx512_kernel() { return sparse24_avx512; }

}  // namespace lutmul::kernels
