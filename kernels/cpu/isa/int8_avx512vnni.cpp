// int8 kernels for AVX-512 VNNI: vectorized row quantization and a 4-row × 64-output
// vpdpbusd micro-kernel over weights packed [k/4][tile][16 outputs][4 k]. Equals the scalar
// reference bit for bit (integer sums; the same two float roundings in the epilogue).
#include <immintrin.h>

#include "kernels/cpu/int8/int8_kernels.h"

namespace lutmul::kernels {
namespace {

constexpr int kRows = 4;   // rows per micro-tile
constexpr int kTiles = 4;  // 16-output tiles per micro-tile

// kSmoothed: each x_k times column_inverse[k] first, decided at compile time so that the
// plain quantiser keeps its loops as they were.
template <bool kSmoothed>
bool quantize_rows(const Int8QuantizeArgs& args, int64_t row_begin, int64_t row_end) {
  __mmask16 not_finite = 0;
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const float* smoothing = args.column_inverse;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* x = args.x + r * args.ldx;
    // x_k / s[k] where smoothed, as the reference: one rounding.
    auto load = [&](__mmask16 valid, int64_t k) {
      const __m512 v = _mm512_maskz_loadu_ps(valid, x + k);
      if constexpr (kSmoothed) return _mm512_mul_ps(v, _mm512_maskz_loadu_ps(valid, smoothing + k));
      return v;
    };
    float inverse = args.static_inverse, scale = args.static_scale;
    __m512 largest = _mm512_setzero_ps();
    for (int64_t k = 0; k < args.k; k += 16) {
      const __mmask16 valid = args.k - k >= 16 ? static_cast<__mmask16>(0xFFFF)
                                                : static_cast<__mmask16>((1u << (args.k - k)) - 1u);
      const __m512 v = load(valid, k);
      // x − x is 0 for finite x and NaN for ±inf and NaN.
      not_finite = static_cast<__mmask16>(not_finite | _mm512_cmp_ps_mask(_mm512_sub_ps(v, v), _mm512_setzero_ps(), _CMP_NEQ_UQ));
      largest = _mm512_max_ps(largest, _mm512_and_ps(v, abs_mask));
    }
    if (args.dynamic) {
      const float m = _mm512_reduce_max_ps(largest);
      inverse = m > 0.f ? 127.f / m : 1.f;
      scale = m > 0.f ? m / 127.f : 1.f;
    }
    const __m512 inv = _mm512_set1_ps(inverse);
    uint8_t* out = args.out + (r - row_begin) * args.k_padded;
    for (int64_t k = 0; k < args.k_padded; k += 16) {
      const int64_t left = args.k - k;
      const __mmask16 valid = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                         : left <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << left) - 1u);
      const __m512 v = _mm512_mul_ps(load(valid, k), inv);
      // Clamp before converting (rounding then clamping to ±127 gives the same), so huge
      // values cannot wrap; NaN becomes 0 as in the reference (such rows are rejected).
      __m512 clamped = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-127.f)), _mm512_set1_ps(127.f));
      clamped = _mm512_mask_mov_ps(clamped, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_setzero_ps());
      __m512i q = _mm512_cvtps_epi32(clamped);  // round to nearest even, as std::nearbyint
      q = _mm512_add_epi32(q, _mm512_set1_epi32(128));
      const int64_t store = args.k_padded - k >= 16 ? 16 : args.k_padded - k;
      _mm_mask_storeu_epi8(out + k, static_cast<__mmask16>((1u << store) - 1u), _mm512_cvtepi32_epi8(q));
    }
    args.scales[r - row_begin] = scale;
  }
  return not_finite == 0;
}

bool quantize_vnni(const Int8QuantizeArgs& args, int64_t row_begin, int64_t row_end) {
  return args.column_inverse ? quantize_rows<true>(args, row_begin, row_end) : quantize_rows<false>(args, row_begin, row_end);
}

void gemm_vnni(const Int8GemmArgs& args, int64_t row_begin, int64_t row_end, int64_t tile_begin, int64_t tile_end) {
  const int64_t k_groups = args.k_padded / kInt8KGroup;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRows) {
    const int rows = row_end - r0 < kRows ? static_cast<int>(row_end - r0) : kRows;
    const int32_t* x[kRows];
    for (int r = 0; r < kRows; ++r)
      x[r] = reinterpret_cast<const int32_t*>(args.x + (r0 + (r < rows ? r : 0)) * args.k_padded);
    for (int64_t t0 = tile_begin; t0 < tile_end; t0 += kTiles) {
      const int tiles = tile_end - t0 < kTiles ? static_cast<int>(tile_end - t0) : kTiles;
      __m512i acc[kRows][kTiles];
      for (int r = 0; r < kRows; ++r)
        for (int t = 0; t < kTiles; ++t) acc[r][t] = _mm512_setzero_si512();
      const int8_t* w = args.packed + t0 * 64;
      for (int64_t g = 0; g < k_groups; ++g, w += args.tiles * 64) {
        __m512i weights[kTiles];
        for (int t = 0; t < kTiles; ++t) weights[t] = _mm512_loadu_si512(w + (t < tiles ? t : 0) * 64);
        for (int r = 0; r < kRows; ++r) {
          const __m512i xs = _mm512_set1_epi32(x[r][g]);  // 4 activations, broadcast
          for (int t = 0; t < kTiles; ++t) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], xs, weights[t]);
        }
      }
      // Constant trip counts (and breaks) keep the accumulators in registers.
      for (int t = 0; t < kTiles; ++t) {
        if (t >= tiles) break;
        const int64_t m0 = (t0 + t) * kInt8TileOutputs;
        if (m0 >= args.m) break;
        const __mmask16 store = args.m - m0 >= 16 ? static_cast<__mmask16>(0xFFFF)
                                                  : static_cast<__mmask16>((1u << (args.m - m0)) - 1u);
        // u8 activations carry +128: subtract 128 · Σ_k w.
        const __m512i offset = _mm512_slli_epi32(_mm512_loadu_si512(args.column_sums + m0), 7);
        const __m512 weight_scale = _mm512_loadu_ps(args.weight_scales + m0);
        const __m512 bias = _mm512_loadu_ps(args.bias + m0);
        for (int r = 0; r < kRows; ++r) {
          if (r >= rows) break;
          const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(args.row_scales[r0 + r]), weight_scale);
          const __m512 sums = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][t], offset));
          _mm512_mask_storeu_ps(args.y + (r0 + r) * args.ldy + m0, store, _mm512_add_ps(_mm512_mul_ps(sums, scale), bias));
        }
      }
    }
  }
}

void epilogue_vnni(const Int8EpilogueArgs& args, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int32_t* sums = args.sums + r * args.m;
    float* y = args.y + r * args.ldy;
    const __m512 row_scale = _mm512_set1_ps(args.row_scales[r]);
    for (int64_t m0 = 0; m0 < args.m; m0 += 16) {
      const __mmask16 valid = args.m - m0 >= 16 ? static_cast<__mmask16>(0xFFFF)
                                                : static_cast<__mmask16>((1u << (args.m - m0)) - 1u);
      const __m512i offset = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(valid, args.column_sums + m0), 7);
      const __m512 scale = _mm512_mul_ps(row_scale, _mm512_maskz_loadu_ps(valid, args.weight_scales + m0));
      const __m512 value = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_maskz_loadu_epi32(valid, sums + m0), offset));
      _mm512_mask_storeu_ps(y + m0, valid, _mm512_add_ps(_mm512_mul_ps(value, scale), _mm512_maskz_loadu_ps(valid, args.bias + m0)));
    }
  }
}

}  // namespace

const Int8KernelTable* int8_vnni_kernels() {
  static const Int8KernelTable table{quantize_vnni, gemm_vnni, epilogue_vnni};
  return &table;
}

}  // namespace lutmul::kernels
