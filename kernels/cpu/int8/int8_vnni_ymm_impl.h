// The int8 product with 256-bit vpdpbusd, written once for both encodings of the
// instruction: VEX (AVX-VNNI: Alder Lake and later, Zen 5; 16 ymm registers) and EVEX
// (AVX-512 VNNI with VL), which lets CPUs without AVX-VNNI check the same code bit for bit.
// A 4-row × 16-output micro-tile: per group of 4 k, two weight loads, four 4-byte
// broadcasts and eight dot-4 instructions; 11 registers. Include from one file per encoding,
// defining `Dot::dpbusd(acc, u8x4, s8x4)`.
#pragma once

#include <immintrin.h>

#include "kernels/cpu/int8/int8_kernels.h"
#include "kernels/cpu/isa/store_prefix_avx2.h"

namespace lutmul::kernels {

template <typename Dot>
void gemm_vnni_ymm(const Int8GemmArgs& args, int64_t row_begin, int64_t row_end, int64_t tile_begin, int64_t tile_end) {
  constexpr int kRows = 4;
  const int64_t k_groups = args.k_padded / kInt8KGroup;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRows) {
    const uint8_t* x[kRows];
    const int rows = int8_row_group<kRows>(args, r0, row_end, x);
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      __m256i acc[kRows][2];  // outputs 0-7 and 8-15 of the tile
      for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
      const int8_t* w = args.packed + tile * 64;
      for (int64_t g = 0; g < k_groups; ++g, w += args.tiles * 64) {
        const __m256i w_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
        const __m256i w_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32));
        for (int r = 0; r < kRows; ++r) {
          int32_t four;
          __builtin_memcpy(&four, x[r] + 4 * g, 4);
          const __m256i xs = _mm256_set1_epi32(four);
          acc[r][0] = Dot::dpbusd(acc[r][0], xs, w_low);
          acc[r][1] = Dot::dpbusd(acc[r][1], xs, w_high);
        }
      }
      for (int half = 0; half < 2; ++half) {
        const int64_t m0 = tile * kInt8TileOutputs + 8 * half;
        if (m0 >= args.m) break;
        const int64_t left = args.m - m0;
        const int stored = left > 8 ? 8 : static_cast<int>(left);
        // u8 activations carry +128: subtract 128 · Σ_k w.
        const __m256i offset =
            _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(args.column_sums + m0)), 7);
        const __m256 weight_scale = _mm256_loadu_ps(args.weight_scales + m0);
        const __m256 bias = _mm256_loadu_ps(args.bias + m0);
        for (int r = 0; r < kRows; ++r) {
          if (r >= rows) break;
          const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(args.row_scales[r0 + r]), weight_scale);
          const __m256 value = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][half], offset));
          store_prefix_ps(args.y + (r0 + r) * args.ldy + m0, _mm256_add_ps(_mm256_mul_ps(value, scale), bias), stored);
        }
      }
    }
  }
}

}  // namespace lutmul::kernels
