// The adapter term for AVX-512: tiles of up to 8 rows of one segment. Shrink: 16 adapter
// columns at a time, each row of A loaded once and multiplied into the 8 rows' accumulators
// (x broadcast from the row in place). Expand: 16 outputs at a time, each row of B loaded
// once for the 8 rows. Tails of r and M are masked, so any r and M run without padding.
// Sums follow the reference's order exactly.
#include <immintrin.h>

#include "kernels/cpu/lora_kernels.h"

namespace lutmul::kernels {
namespace {

inline __mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << remaining) - 1u);
}

// One tile of exactly kRows rows (a template, so every loop over rows unrolls).
template <int kRows>
void lora_tile(const LoraArgs& args, const int64_t* rows) {
  const float* x[kRows];
  float* y[kRows];
  for (int i = 0; i < kRows; ++i) {
    x[i] = args.x + rows[i] * args.ldx;
    y[i] = args.y + rows[i] * args.ldy;
  }
  float* t = args.scratch;  // kRows × r
  for (int64_t s0 = 0; s0 < args.r; s0 += 16) {
    const __mmask16 mask = tail_mask(args.r - s0);
    __m512 acc[kRows];
    for (int i = 0; i < kRows; ++i) acc[i] = _mm512_setzero_ps();
    const float* a = args.a + s0;
    for (int64_t k = 0; k < args.k; ++k, a += args.r) {
      const __m512 column = _mm512_maskz_loadu_ps(mask, a);
      for (int i = 0; i < kRows; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(x[i][k]), column, acc[i]);
    }
    for (int i = 0; i < kRows; ++i) _mm512_mask_storeu_ps(t + i * args.r + s0, mask, acc[i]);
  }
  const __m512 scale = _mm512_set1_ps(args.scale);
  for (int64_t j0 = 0; j0 < args.m; j0 += 16) {
    const __mmask16 mask = tail_mask(args.m - j0);
    __m512 acc[kRows];
    for (int i = 0; i < kRows; ++i) acc[i] = _mm512_setzero_ps();
    const float* b = args.b + j0;
    for (int64_t s = 0; s < args.r; ++s, b += args.m) {
      const __m512 row = _mm512_maskz_loadu_ps(mask, b);
      for (int i = 0; i < kRows; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(t[i * args.r + s]), row, acc[i]);
    }
    for (int i = 0; i < kRows; ++i) {
      const __m512 old = _mm512_maskz_loadu_ps(mask, y[i] + j0);
      _mm512_mask_storeu_ps(y[i] + j0, mask, _mm512_add_ps(old, _mm512_mul_ps(scale, acc[i])));
    }
  }
}

void lora_avx512(const LoraArgs& args, const int64_t* rows, int64_t count) {
  static_assert(kLoraTileRows == 8, "the switch below covers tiles of 1 to 8 rows");
  for (int64_t i0 = 0; i0 < count; i0 += kLoraTileRows) {
    const int64_t* tile = rows + i0;
    switch (count - i0 < kLoraTileRows ? count - i0 : kLoraTileRows) {
      case 1: lora_tile<1>(args, tile); break;
      case 2: lora_tile<2>(args, tile); break;
      case 3: lora_tile<3>(args, tile); break;
      case 4: lora_tile<4>(args, tile); break;
      case 5: lora_tile<5>(args, tile); break;
      case 6: lora_tile<6>(args, tile); break;
      case 7: lora_tile<7>(args, tile); break;
      default: lora_tile<8>(args, tile); break;
    }
  }
}

}  // namespace

LoraFn lora_avx512_kernel() { return lora_avx512; }

}  // namespace lutmul::kernels
