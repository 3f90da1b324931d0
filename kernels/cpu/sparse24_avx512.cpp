// The 2:4 product for AVX-512, rows of X in vector lanes: a tile of up to 128 rows is
// transposed once, then for each block of 64 inputs every output applies its two kept
// weights per group of four inputs as broadcast fused multiply-adds on the tile rows its
// 2-bit positions select. The selection is address arithmetic, so no shuffle competes with
// the FMAs. Partial sums are carried from block to block per output and moved into
// row-major Y at the end.
//
// One output at a time over 128 rows (eight accumulators) measured fastest on Zen 4: 3.2 ms
// at N = 256, K = M = 1024, against 3.4 ms for one output over 64 rows and 4.0 ms for four
// outputs interleaved over 64 rows (more pointers than registers). Blocks of 32 inputs (16 KB
// slices, well inside L1) ran slower than blocks of 64, and blocks of 128 slower still.
#include <immintrin.h>

#include "kernels/cpu/row_tile_avx512.h"
#include "kernels/cpu/sparse24_kernels.h"

namespace lutmul::kernels {
namespace {

template <int V>
struct Tile {
  static constexpr int kRows = 16 * V;

  static inline void add_weight(const float* x, float weight, __m512* acc) {
    const __m512 w = _mm512_set1_ps(weight);
    for (int v = 0; v < V; ++v) acc[v] = _mm512_fmadd_ps(_mm512_load_ps(x + 16 * v), w, acc[v]);
  }

  static void apply_block(const Sparse24Args& args, const float* tile, int64_t block, float* partial) {
    const Sparse24Layout& layout = args.layout;
    const int64_t count = layout.count(block);
    const float* tile_block = tile + 4 * block * kSparse24BlockGroups * kRows;
    for (int64_t m = 0; m < layout.m; ++m) {
      float* sums = partial + m * kRows;
      __m512 acc[V];
      for (int v = 0; v < V; ++v) acc[v] = block == 0 ? _mm512_setzero_ps() : _mm512_load_ps(sums + 16 * v);
      const float* values = args.values + layout.value_offset(block, m);
      const uint8_t* codes = args.codes + layout.code_offset(block, m);
      for (int64_t g = 0; g < count; ++g) {
        const float* x = tile_block + 4 * g * kRows;
        const int code = sparse24_code(codes, g);
        add_weight(x + (code & 3) * kRows, values[2 * g], acc);
        add_weight(x + (code >> 2) * kRows, values[2 * g + 1], acc);
      }
      for (int v = 0; v < V; ++v) _mm512_store_ps(sums + 16 * v, acc[v]);
    }
  }

  // Y rows r0 .. r0 + rows (rows ≤ kRows). K ≥ 4, so there is at least one block and every
  // partial sum is written before it is read. The scratch is 64-byte aligned.
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
  constexpr int kFull = Tile<8>::kRows;
  static_assert(kFull == kSparse24TileRows, "the scratch is sized for the full tile");
  int64_t r0 = row_begin;
  for (; row_end - r0 >= kFull; r0 += kFull) Tile<8>::run(args, r0, kFull);
  const int left = static_cast<int>(row_end - r0);
  if (left > 64) Tile<8>::run(args, r0, left);
  else if (left > 32) Tile<4>::run(args, r0, left);
  else if (left > 16) Tile<2>::run(args, r0, left);
  else if (left > 0) Tile<1>::run(args, r0, left);
}

}  // namespace

Sparse24Fn sparse24_avx512_kernel() { return sparse24_avx512; }

}  // namespace lutmul::kernels
