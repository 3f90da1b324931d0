// The adapter term for AVX-512: tiles of up to 8 rows of one segment. Shrink: 16 adapter
// columns at a time, each row of A loaded once and multiplied into the 8 rows' accumulators
// (x broadcast from the row in place, folded into the FMA). Expand: 16 outputs at a time,
// the accumulators start from Y itself, and each row of B's panel is loaded once for the 8
// rows. (Tiles of 16 rows ran slower: 16 row pointers do not fit in registers.)
// Tails of r and M are masked, so any r and M run without padding. Sums follow the
// reference's order exactly.
#include <immintrin.h>

#include <utility>

#include "kernels/cpu/lora/lora_kernels.h"

namespace lutmul::kernels {
namespace {

inline __mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << remaining) - 1u);
}

constexpr int kNotFinite = 0x01 | 0x08 | 0x10 | 0x80;  // vfpclassps: QNaN, +inf, −inf, SNaN

// One tile of exactly kRows rows (a template, so every loop over rows unrolls). Returns a
// nonzero mask if any t was not finite.
template <int kRows>
__mmask16 lora_tile(const LoraArgs& args, const int64_t* rows) {
  const float* x[kRows];
  float* y[kRows];
  for (int i = 0; i < kRows; ++i) {
    x[i] = args.x + rows[i] * args.ldx;
    y[i] = args.y + rows[i] * args.ldy;
  }
  const int64_t k_size = args.k, r = args.r, m = args.m;
  const __m512 scale = _mm512_set1_ps(args.scale);
  __mmask16 bad = 0;
  float* t = args.scratch;  // kRows × r
  for (int64_t s0 = 0; s0 < r; s0 += 16) {
    const __mmask16 mask = tail_mask(r - s0);
    __m512 acc[kRows];
    for (int i = 0; i < kRows; ++i) acc[i] = _mm512_setzero_ps();
    const float* a = args.a + s0;
    for (int64_t k = 0; k < k_size; ++k, a += r) {
      const __m512 column = _mm512_maskz_loadu_ps(mask, a);
      for (int i = 0; i < kRows; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(x[i][k]), column, acc[i]);
    }
    for (int i = 0; i < kRows; ++i) {
      const __m512 scaled = _mm512_mul_ps(scale, acc[i]);
      bad |= _mm512_mask_fpclass_ps_mask(mask, scaled, kNotFinite);
      _mm512_mask_storeu_ps(t + i * r + s0, mask, scaled);
    }
  }
  // Two panels (32 outputs) at a time while both are whole: each broadcast of t then feeds two
  // FMAs, 10 loads per 16 FMAs instead of 9 per 8.
  int64_t j0 = 0;
  for (; j0 + 32 <= m; j0 += 32) {
    __m512 acc[kRows][2];
    for (int i = 0; i < kRows; ++i) {
      acc[i][0] = _mm512_loadu_ps(y[i] + j0);
      acc[i][1] = _mm512_loadu_ps(y[i] + j0 + 16);
    }
    const float* b0 = args.b + j0 * r;  // panels of outputs j0 .. j0 + 15 and j0 + 16 .. j0 + 31
    const float* b1 = b0 + 16 * r;
    for (int64_t s = 0; s < r; ++s) {
      const __m512 row0 = _mm512_loadu_ps(b0 + 16 * s), row1 = _mm512_loadu_ps(b1 + 16 * s);
      for (int i = 0; i < kRows; ++i) {
        const __m512 ts = _mm512_set1_ps(t[i * r + s]);
        acc[i][0] = _mm512_fmadd_ps(ts, row0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(ts, row1, acc[i][1]);
      }
    }
    for (int i = 0; i < kRows; ++i) {
      _mm512_storeu_ps(y[i] + j0, acc[i][0]);
      _mm512_storeu_ps(y[i] + j0 + 16, acc[i][1]);
    }
  }
  for (; j0 < m; j0 += 16) {
    const __mmask16 mask = tail_mask(m - j0);
    __m512 acc[kRows];
    for (int i = 0; i < kRows; ++i) acc[i] = _mm512_maskz_loadu_ps(mask, y[i] + j0);
    const float* b = args.b + j0 * r;  // this block's panel: r × 16, zero past M
    for (int64_t s = 0; s < r; ++s, b += 16) {
      const __m512 row = _mm512_loadu_ps(b);
      for (int i = 0; i < kRows; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(t[i * r + s]), row, acc[i]);
    }
    for (int i = 0; i < kRows; ++i) _mm512_mask_storeu_ps(y[i] + j0, mask, acc[i]);
  }
  return bad;
}

template <int... kRows>
__mmask16 any_tile(int rows, const LoraArgs& args, const int64_t* tile, std::integer_sequence<int, kRows...>) {
  __mmask16 bad = 0;
  ((rows == kRows + 1 ? (bad = lora_tile<kRows + 1>(args, tile), 0) : 0), ...);
  return bad;
}

bool lora_avx512(const LoraArgs& args, const int64_t* rows, int64_t count) {
  __mmask16 bad = 0;
  for (int64_t i0 = 0; i0 < count; i0 += kLoraTileRows) {
    const int tile_rows = static_cast<int>(count - i0 < kLoraTileRows ? count - i0 : kLoraTileRows);
    bad |= any_tile(tile_rows, args, rows + i0, std::make_integer_sequence<int, kLoraTileRows>{});
  }
  return bad == 0;
}

}  // namespace

LoraFn lora_avx512_kernel() { return lora_avx512; }

}  // namespace lutmul::kernels
