// The adapter term for AVX2 (with FMA): the AVX-512 kernel's tiles on 8-float vectors. Shrink:
// 8 adapter columns at a time, each row of A loaded once for the tile's 8 rows. Expand: one
// 16-output panel (two vectors) for 4 rows at a time, so 8 accumulators, the panel's rows and
// a broadcast fit in 16 registers; the accumulators start from Y itself. Tails of r and M are
// loaded with vmaskmovps (its load form is fast on AMD and Intel alike) and stored in
// pieces (store_prefix_avx2.h). Sums follow the reference's order exactly.
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

// Rows [0, kRows) of the tile: outputs [j0, j0 + 16) of one whole or partial panel.
template <int kRows>
inline void expand_panel(const LoraArgs& args, float* const* y, const float* t, int64_t j0) {
  const int64_t r = args.r;
  const int64_t columns = args.m - j0 < 16 ? args.m - j0 : 16;
  const __m256i first = lanes_below(columns), second = lanes_below(columns - 8);
  __m256 acc[kRows][2];
  for (int i = 0; i < kRows; ++i) {
    if (columns == 16) {
      acc[i][0] = _mm256_loadu_ps(y[i] + j0);
      acc[i][1] = _mm256_loadu_ps(y[i] + j0 + 8);
    } else {
      acc[i][0] = _mm256_maskload_ps(y[i] + j0, first);
      acc[i][1] = columns > 8 ? _mm256_maskload_ps(y[i] + j0 + 8, second) : _mm256_setzero_ps();
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
    store_prefix_ps(y[i] + j0, acc[i][0], static_cast<int>(columns));
    if (columns > 8) store_prefix_ps(y[i] + j0 + 8, acc[i][1], static_cast<int>(columns - 8));
  }
}

// Expands rows [0, rows) of the tile, 4 at a time.
template <int kRows>
inline void expand_rows(const LoraArgs& args, float* const* y, const float* t, int rows, int64_t j0) {
  if constexpr (kRows > 0) {
    if (rows >= kRows) {
      expand_panel<kRows>(args, y, t, j0);
      expand_rows<kRows>(args, y + kRows, t + kRows * args.r, rows - kRows, j0);
    } else {
      expand_rows<kRows - 1>(args, y, t, rows, j0);
    }
  }
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
  const int64_t k_size = args.k, r = args.r;
  const __m256 scale = _mm256_set1_ps(args.scale);
  int bad = 0;
  float* t = args.scratch;  // kRows × r
  for (int64_t s0 = 0; s0 < r; s0 += 8) {
    const int64_t lanes = r - s0 < 8 ? r - s0 : 8;
    const __m256i mask = lanes_below(lanes);
    __m256 acc[kRows];
    for (int i = 0; i < kRows; ++i) acc[i] = _mm256_setzero_ps();
    const float* a = args.a + s0;
    for (int64_t k = 0; k < k_size; ++k, a += r) {
      const __m256 column = lanes == 8 ? _mm256_loadu_ps(a) : _mm256_maskload_ps(a, mask);
      for (int i = 0; i < kRows; ++i) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(x[i] + k), column, acc[i]);
    }
    const int valid = (1 << lanes) - 1;
    for (int i = 0; i < kRows; ++i) {
      const __m256 scaled = _mm256_mul_ps(scale, acc[i]);
      bad |= not_finite(scaled) & valid;
      store_prefix_ps(t + i * r + s0, scaled, static_cast<int>(lanes));
    }
  }
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
