// The adapter term for AVX2 (with FMA). Shrink: 16 adapter columns (two vectors) for 4 rows at
// a time, so each broadcast of x feeds two FMAs. Expand: one 16-output panel (two vectors) for
// 4 rows at a time, so 8 accumulators, the panel's rows and a broadcast fit in 16 registers;
// the accumulators start from Y itself. Tails of r and M are loaded with vmaskmovps (its load
// form is fast on AMD and Intel alike) and stored in pieces (store_prefix_avx2.h). Sums follow
// the reference's order exactly.
//
// Before this kernel AVX2 CPUs ran the scalar reference: on AMD EPYC Zen 3 the grouped term
// of 256 rows over 16 adapters took 25 ms, 50 times BLAS row by row.
#include <immintrin.h>

#include <utility>

#include "kernels/cpu/isa/store_prefix_avx2.h"
#include "kernels/cpu/lora/lora_kernels.h"

namespace lutmul::kernels {
namespace {

inline __m256i lanes_below(int64_t remaining) {
  const int n = remaining >= 8 ? 8 : static_cast<int>(remaining);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Lanes of v that are a NaN or an infinity (exponent all ones), as a movemask.
inline int not_finite(__m256 v) {
  const __m256i bits = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7fffffff));
  return _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(bits, _mm256_set1_epi32(0x7f7fffff))));
}

// Rows [0, kRows) of the tile: outputs [j0, j0 + 16) of one whole (kWhole) or partial panel.
// Whole panels take plain loads and stores, partial ones masked: with both in one function GCC
// kept a copy of every accumulator on the stack, a store per FMA (the term 1.5x slower on Zen 3).
template <int kRows, bool kWhole>
inline void expand_panel(const LoraArgs& args, float* const* y, const float* t, int64_t j0) {
  const int64_t r = args.r;
  const int64_t columns = kWhole ? 16 : args.m - j0;
  __m256 acc[kRows][2];
  for (int i = 0; i < kRows; ++i) {
    if constexpr (kWhole) {
      acc[i][0] = _mm256_loadu_ps(y[i] + j0);
      acc[i][1] = _mm256_loadu_ps(y[i] + j0 + 8);
    } else {
      acc[i][0] = _mm256_maskload_ps(y[i] + j0, lanes_below(columns));
      acc[i][1] = columns > 8 ? _mm256_maskload_ps(y[i] + j0 + 8, lanes_below(columns - 8)) : _mm256_setzero_ps();
    }
  }
  const float* b = args.b + j0 * r;  // this panel: r × 16, zero past M
  for (int64_t s = 0; s < r; ++s, b += 16) {
    const __m256 low = _mm256_loadu_ps(b), high = _mm256_loadu_ps(b + 8);
    for (int i = 0; i < kRows; ++i) {
      const __m256 ts = _mm256_broadcast_ss(t + i * r + s);
      acc[i][0] = _mm256_fmadd_ps(ts, low, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ts, high, acc[i][1]);
    }
  }
  for (int i = 0; i < kRows; ++i) {
    if constexpr (kWhole) {
      _mm256_storeu_ps(y[i] + j0, acc[i][0]);
      _mm256_storeu_ps(y[i] + j0 + 8, acc[i][1]);
    } else {
      store_prefix_ps(y[i] + j0, acc[i][0], static_cast<int>(columns));
      if (columns > 8) store_prefix_ps(y[i] + j0 + 8, acc[i][1], static_cast<int>(columns - 8));
    }
  }
}

// Expands rows [0, rows) of the tile, 4 at a time.
template <int kRows>
inline void expand_rows(const LoraArgs& args, float* const* y, const float* t, int rows, int64_t j0) {
  if constexpr (kRows > 0) {
    if (rows >= kRows) {
      if (args.m - j0 >= 16) {
        expand_panel<kRows, true>(args, y, t, j0);
      } else {
        expand_panel<kRows, false>(args, y, t, j0);
      }
      expand_rows<kRows>(args, y + kRows, t + kRows * args.r, rows - kRows, j0);
    } else {
      expand_rows<kRows - 1>(args, y, t, rows, j0);
    }
  }
}

// Shrink for kGroup (at most 4) rows of the tile: t = scale · x·A for adapter columns
// [s0, s0 + 16), two vectors per row, so each broadcast of x feeds two FMAs and only kGroup rows'
// lines of X are live (8 rows at once, 4 KB apart at K = 1024, fell into one L1 set).
// Returns nonzero if any t was not finite.
template <int kGroup, bool kWhole>
int shrink_group(const LoraArgs& args, const float* const* x, float* t, int64_t s0) {
  const int64_t r = args.r;
  const int64_t lanes = kWhole ? 16 : r - s0;
  // The loops over rows are unrolled early (the pragmas): unrolled late, GCC 12 kept a copy of
  // the accumulators on the stack and stored all 8 on every k (395 against 237 µs for the term
  // of 256 rows over 16 adapters on Zen 3).
  __m256 acc_low[kGroup], acc_high[kGroup];
  _Pragma("GCC unroll 4") for (int i = 0; i < kGroup; ++i) {
    acc_low[i] = _mm256_setzero_ps();
    acc_high[i] = _mm256_setzero_ps();
  }
  const float* a = args.a + s0;
  const int64_t k_size = args.k;
  for (int64_t k = 0; k < k_size; ++k, a += r) {
    __m256 low, high;
    if constexpr (kWhole) {
      low = _mm256_loadu_ps(a);
      high = _mm256_loadu_ps(a + 8);
    } else {
      low = _mm256_maskload_ps(a, lanes_below(lanes));
      high = _mm256_maskload_ps(a + 8, lanes_below(lanes - 8));
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < kGroup; ++i) {
      const __m256 xs = _mm256_broadcast_ss(x[i] + k);
      acc_low[i] = _mm256_fmadd_ps(xs, low, acc_low[i]);
      acc_high[i] = _mm256_fmadd_ps(xs, high, acc_high[i]);
    }
  }
  const __m256 scale = _mm256_set1_ps(args.scale);
  const int valid = (1 << lanes) - 1;
  int bad = 0;
  _Pragma("GCC unroll 4") for (int i = 0; i < kGroup; ++i) {
    const __m256 low = _mm256_mul_ps(scale, acc_low[i]), high = _mm256_mul_ps(scale, acc_high[i]);
    bad |= (not_finite(low) | not_finite(high) << 8) & valid;
    if constexpr (kWhole) {
      _mm256_storeu_ps(t + i * r + s0, low);
      _mm256_storeu_ps(t + i * r + s0 + 8, high);
    } else {
      store_prefix_ps(t + i * r + s0, low, static_cast<int>(lanes));
      if (lanes > 8) store_prefix_ps(t + i * r + s0 + 8, high, static_cast<int>(lanes - 8));
    }
  }
  return bad;
}

// Shrinks rows [0, rows) of the tile, 4 at a time.
template <int kGroup>
int shrink_rows(const LoraArgs& args, const float* const* x, float* t, int rows, int64_t s0) {
  if constexpr (kGroup > 0) {
    if (rows >= kGroup) {
      const int bad = args.r - s0 >= 16 ? shrink_group<kGroup, true>(args, x, t, s0) : shrink_group<kGroup, false>(args, x, t, s0);
      return bad | shrink_rows<kGroup>(args, x + kGroup, t + kGroup * args.r, rows - kGroup, s0);
    }
    return shrink_rows<kGroup - 1>(args, x, t, rows, s0);
  }
  return 0;
}

// One tile of exactly kRows rows. Returns nonzero if any t was not finite.
template <int kRows>
int lora_tile(const LoraArgs& args, const int64_t* rows) {
  const float* x[kRows];
  float* y[kRows];
  for (int i = 0; i < kRows; ++i) {
    x[i] = args.x + rows[i] * args.ldx;
    y[i] = args.y + rows[i] * args.ldy;
  }
  float* t = args.scratch;  // kRows × r
  int bad = 0;
  for (int64_t s0 = 0; s0 < args.r; s0 += 16) bad |= shrink_rows<4>(args, x, t, kRows, s0);
  for (int64_t j0 = 0; j0 < args.m; j0 += 16) expand_rows<4>(args, y, t, kRows, j0);
  return bad;
}

template <int... kRows>
int any_tile(int rows, const LoraArgs& args, const int64_t* tile, std::integer_sequence<int, kRows...>) {
  int bad = 0;
  ((rows == kRows + 1 ? (bad = lora_tile<kRows + 1>(args, tile), 0) : 0), ...);
  return bad;
}

bool lora_avx2(const LoraArgs& args, const int64_t* rows, int64_t count) {
  int bad = 0;
  for (int64_t i0 = 0; i0 < count; i0 += kLoraTileRows) {
    const int tile_rows = static_cast<int>(count - i0 < kLoraTileRows ? count - i0 : kLoraTileRows);
    bad |= any_tile(tile_rows, args, rows + i0, std::make_integer_sequence<int, kLoraTileRows>{});
  }
  return bad == 0;
}

}  // namespace

LoraFn lora_avx2_kernel() { return lora_avx2; }

}  // namespace lutmul::kernels
