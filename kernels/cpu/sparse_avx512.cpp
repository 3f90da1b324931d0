// The pruned product for AVX-512: a tile of 32 rows of X is transposed once (K × 32 floats);
// each kept weight is then one broadcast fused multiply-add into two 16-row accumulators,
// four outputs interleaved to hide the FMA latency, and 16 outputs at a time are
// transposed back into row-major Y. Every output adds its weights in ascending k, as the
// scalar reference does. (Chunking K so that the tile fits L1 measured slower: the chunk
// bookkeeping cost more than the L2 traffic it saved.)
#include <immintrin.h>

#include "kernels/cpu/simd_avx512.h"
#include "kernels/cpu/sparse_kernels.h"

namespace lutmul::kernels {
namespace {

constexpr int kTileRows = 32;
constexpr int kColumns = 4;  // outputs accumulated together (16 is a multiple)

inline void add_weight(const float* tile, const SparseArgs& args, int64_t i, __m512& a, __m512& b) {
  const float* column = tile + int64_t{args.rows[i]} * kTileRows;
  const __m512 w = _mm512_set1_ps(args.values[i]);
  a = _mm512_fmadd_ps(_mm512_loadu_ps(column), w, a);
  b = _mm512_fmadd_ps(_mm512_loadu_ps(column + 16), w, b);
}

void sparse_avx512(const SparseArgs& args, int64_t row_begin, int64_t row_end) {
  float* tile = args.scratch;  // K × 32: tile[k·32 + r]
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kTileRows) {
    const int rows = row_end - r0 < kTileRows ? static_cast<int>(row_end - r0) : kTileRows;
    // Transpose the rows into the tile, 16 × 16 at a time (rows past the end repeat row r0).
    for (int half = 0; half < 2; ++half) {
      const float* x[16];
      for (int i = 0; i < 16; ++i) {
        const int r = 16 * half + i;
        x[i] = args.x + (r0 + (r < rows ? r : 0)) * args.ldx;
      }
      int64_t k0 = 0;
      for (; k0 + 16 <= args.k; k0 += 16) {
        __m512 in[16];
        for (int i = 0; i < 16; ++i) in[i] = _mm512_loadu_ps(x[i] + k0);
        Avx512Ops::transpose_store(in, tile + k0 * kTileRows + 16 * half, kTileRows, 16, 16);
      }
      for (; k0 < args.k; ++k0)
        for (int i = 0; i < 16; ++i) tile[k0 * kTileRows + 16 * half + i] = x[i][k0];
    }
    for (int64_t m0 = 0; m0 < args.m; m0 += 16) {
      const int count = args.m - m0 < 16 ? static_cast<int>(args.m - m0) : 16;
      __m512 low[16], high[16];
      for (int j = 0; j < count; j += kColumns) {
        __m512 a[kColumns], b[kColumns];
        int64_t next[kColumns], end[kColumns];
        for (int c = 0; c < kColumns; ++c) {
          a[c] = b[c] = _mm512_setzero_ps();
          const int64_t m = m0 + (j + c < count ? j + c : j);
          next[c] = args.column_start[m];
          end[c] = j + c < count ? args.column_start[m + 1] : next[c];
        }
        int64_t common = end[0] - next[0];
        for (int c = 1; c < kColumns; ++c) common = end[c] - next[c] < common ? end[c] - next[c] : common;
        for (int64_t step = 0; step < common; ++step)
          for (int c = 0; c < kColumns; ++c) add_weight(tile, args, next[c] + step, a[c], b[c]);
        for (int c = 0; c < kColumns; ++c) {
          if (j + c >= count) break;
          for (int64_t i = next[c] + common; i < end[c]; ++i) add_weight(tile, args, i, a[c], b[c]);
          const __m512 bias = _mm512_set1_ps(args.bias[m0 + j + c]);
          low[j + c] = _mm512_add_ps(a[c], bias);
          high[j + c] = _mm512_add_ps(b[c], bias);
        }
      }
      for (int j = count; j < 16; ++j) low[j] = high[j] = _mm512_setzero_ps();
      Avx512Ops::transpose_store(low, args.y + r0 * args.ldy + m0, args.ldy, rows < 16 ? rows : 16, count);
      if (rows > 16) Avx512Ops::transpose_store(high, args.y + (r0 + 16) * args.ldy + m0, args.ldy, rows - 16, count);
    }
  }
}

}  // namespace

SparseFn sparse_avx512_kernel() { return sparse_avx512; }

}  // namespace lutmul::kernels
