// int8 kernels for AVX2 (and AVX-512 CPUs without VNNI): exact products by widening to
// 16 bits and vpmaddwd, never vpmaddubsw, whose 16-bit pair sums saturate for u8 × s8
// (255 · 127 · 2 > 32767). Same packed layout and epilogue as the VNNI kernel; equals the
// scalar reference bit for bit.
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/int8/int8_kernels.h"
#include "kernels/cpu/isa/store_prefix_avx2.h"

namespace lutmul::kernels {
namespace {

// kSmoothed: each x_k times column_inverse[k] first, decided at compile time.
template <bool kSmoothed>
bool quantize_rows(const Int8QuantizeArgs& args, int64_t row_begin, int64_t row_end) {
  __m256 not_finite = _mm256_setzero_ps();
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const float* smoothing = args.column_inverse;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* x = args.x + r * args.ldx;
    // x_k / s[k] where smoothed, as the reference: one rounding.
    auto load = [&](int64_t k) {
      const __m256 v = _mm256_loadu_ps(x + k);
      if constexpr (kSmoothed) return _mm256_mul_ps(v, _mm256_loadu_ps(smoothing + k));
      return v;
    };
    auto value = [&](int64_t k) { return kSmoothed ? x[k] * smoothing[k] : x[k]; };
    float inverse = args.static_inverse, scale = args.static_scale;
    __m256 largest = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= args.k; k += 8) {
      const __m256 v = load(k);
      not_finite = _mm256_or_ps(not_finite, _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_NEQ_UQ));
      largest = _mm256_max_ps(largest, _mm256_and_ps(v, abs_mask));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, largest);
    float m = 0.f;
    for (float v : lanes) m = v > m ? v : m;
    bool tail_finite = true;
    for (; k < args.k; ++k) {
      const float v = value(k);
      tail_finite &= (v - v) == 0.f;
      const float a = v < 0.f ? -v : v;
      m = a > m ? a : m;
    }
    if (!tail_finite) not_finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    if (args.dynamic) {
      inverse = m > 0.f ? 127.f / m : 1.f;
      scale = m > 0.f ? m / 127.f : 1.f;
    }
    const __m256 inv = _mm256_set1_ps(inverse);
    uint8_t* out = args.out + (r - row_begin) * args.k_padded;
    alignas(32) float chunk[8];
    alignas(32) int32_t q[8];
    for (int64_t j = 0; j < args.k_padded; j += 8) {
      for (int i = 0; i < 8; ++i) chunk[i] = j + i < args.k ? value(j + i) : 0.f;
      const __m256 v = _mm256_mul_ps(_mm256_load_ps(chunk), inv);
      // Clamp, then NaN to 0, then round to nearest even: as the reference.
      __m256 clamped = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.f)), _mm256_set1_ps(127.f));
      clamped = _mm256_blendv_ps(clamped, _mm256_setzero_ps(), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      _mm256_store_si256(reinterpret_cast<__m256i*>(q), _mm256_add_epi32(_mm256_cvtps_epi32(clamped), _mm256_set1_epi32(128)));
      for (int i = 0; i < 8 && j + i < args.k_padded; ++i) out[j + i] = static_cast<uint8_t>(q[i]);
    }
    args.scales[r - row_begin] = scale;
  }
  return _mm256_movemask_ps(not_finite) == 0;
}

bool quantize_avx2(const Int8QuantizeArgs& args, int64_t row_begin, int64_t row_end) {
  return args.column_inverse ? quantize_rows<true>(args, row_begin, row_end) : quantize_rows<false>(args, row_begin, row_end);
}

constexpr int kRows = 3;  // 12 accumulators, 3 x vectors and a weight vector: one spill, still the fastest

// kGroupRows rows (kRows, or 1 for a lone row: a GEMV) against whole 16-output tiles: per k
// group (4 k values of 16 outputs, one 64-byte line of the packed weights) four weight vectors
// of 4 outputs × 4 k are widened to 16 bits, each used for every row. Per row, the k group's 4
// values of x as 16-bit values, repeated (a 64-bit broadcast when the rows were widened up
// front, kWidened). Lane pairs of an accumulator hold partial sums of one output (k 0-1 and
// 2-3), added at the end.
template <int kGroupRows, bool kWidened>
void gemm_rows(const Int8GemmArgs& args, const uint8_t* const (&x)[kRows], const int16_t* wide, int64_t wide_stride,
               int rows, int64_t r0, int64_t tile_begin, int64_t tile_end) {
  const int64_t k_groups = args.k_padded / kInt8KGroup;
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    __m256i acc[kGroupRows][4];
    for (int r = 0; r < kGroupRows; ++r)
      for (int q = 0; q < 4; ++q) acc[r][q] = _mm256_setzero_si256();
    const int8_t* w = args.packed + tile * 64;
    for (int64_t g = 0; g < k_groups; ++g, w += args.tiles * 64) {
      // The compiler keeps the rows' broadcasts in registers across the weight vectors (and
      // spills one accumulator); an opaque broadcast per use measured slower.
      const auto x_values = [&](int r) {
        if constexpr (kWidened) {
          int64_t four;
          __builtin_memcpy(&four, wide + r * wide_stride + 4 * g, 8);
          return _mm256_set1_epi64x(four);
        } else {
          int32_t four;
          __builtin_memcpy(&four, x[r] + 4 * g, 4);
          return _mm256_cvtepu8_epi16(_mm_set1_epi32(four));
        }
      };
      for (int q = 0; q < 4; ++q) {  // outputs 4q .. 4q + 3
        const __m256i weights = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16 * q)));
        for (int r = 0; r < kGroupRows; ++r) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(weights, x_values(r)));
      }
    }
    for (int half = 0; half < 2; ++half) {  // outputs 8·half .. 8·half + 7 of the tile
      const int64_t m0 = tile * kInt8TileOutputs + 8 * half;
      if (m0 >= args.m) break;
      const int64_t left = args.m - m0;
      const int stored = left > 8 ? 8 : static_cast<int>(left);
      const __m256i offset = _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(args.column_sums + m0)), 7);
      const __m256 weight_scale = _mm256_loadu_ps(args.weight_scales + m0);
      const __m256 bias = _mm256_loadu_ps(args.bias + m0);
      for (int r = 0; r < kGroupRows; ++r) {
        if (r >= rows) break;
        // hadd gives outputs [0 1 4 5 | 2 3 6 7]; reorder to 0..7.
        const __m256i pairs = _mm256_hadd_epi32(acc[r][2 * half], acc[r][2 * half + 1]);
        const __m256i sums = _mm256_permute4x64_epi64(pairs, 0xD8);
        const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(args.row_scales[r0 + r]), weight_scale);
        const __m256 value = _mm256_cvtepi32_ps(_mm256_sub_epi32(sums, offset));
        store_prefix_ps(args.y + (r0 + r) * args.ldy + m0, _mm256_add_ps(_mm256_mul_ps(value, scale), bias), stored);
      }
    }
  }
}

// Output tiles in blocks whose weights (k_padded × 16 bytes a tile) stay in L2 while every
// row of the call passes over them, rather than coming from L3 for each row group (1024 × 1024
// at 512 rows on Zen 3: 13.7 → 12.3 ms).
constexpr int64_t kTileBlockBytes = 128 * 1024;
// Each row group's x is widened to 16 bits once per tile block (on the stack: kernels allocate
// nothing); longer rows widen each k group as they go.
constexpr int64_t kMaxWidenedK = 4096;

void gemm_avx2(const Int8GemmArgs& args, int64_t row_begin, int64_t row_end, int64_t tile_begin, int64_t tile_end) {
  const bool widen = args.k_padded <= kMaxWidenedK;
  const int64_t block_tiles = std::max<int64_t>(1, kTileBlockBytes / (args.k_padded * kInt8TileOutputs));
  int16_t wide[kRows * kMaxWidenedK];
  for (int64_t t0 = tile_begin; t0 < tile_end; t0 += block_tiles) {
    const int64_t t1 = std::min(tile_end, t0 + block_tiles);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRows) {
      const uint8_t* x[kRows];
      const int rows = int8_row_group<kRows>(args, r0, row_end, x);
      if (!widen) {
        if (rows == 1) {
          gemm_rows<1, false>(args, x, nullptr, 0, rows, r0, t0, t1);
        } else {
          gemm_rows<kRows, false>(args, x, nullptr, 0, rows, r0, t0, t1);
        }
        continue;
      }
      const int widened = rows == 1 ? 1 : kRows;  // padding rows repeat row r0: defined values
      for (int r = 0; r < widened; ++r) {
        int16_t* out = wide + r * args.k_padded;
        int64_t k = 0;
        for (; k + 16 <= args.k_padded; k += 16)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k),
                              _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[r] + k))));
        for (; k < args.k_padded; ++k) out[k] = x[r][k];
      }
      if (rows == 1) {
        gemm_rows<1, true>(args, x, wide, args.k_padded, rows, r0, t0, t1);
      } else {
        gemm_rows<kRows, true>(args, x, wide, args.k_padded, rows, r0, t0, t1);
      }
    }
  }
}

void epilogue_avx2(const Int8EpilogueArgs& args, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int32_t* sums = args.sums + r * args.m;
    float* y = args.y + r * args.ldy;
    const __m256 row_scale = _mm256_set1_ps(args.row_scales[r]);
    int64_t m0 = 0;
    for (; m0 + 8 <= args.m; m0 += 8) {
      const __m256i offset = _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(args.column_sums + m0)), 7);
      const __m256 scale = _mm256_mul_ps(row_scale, _mm256_loadu_ps(args.weight_scales + m0));
      const __m256i sum = _mm256_sub_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums + m0)), offset);
      _mm256_storeu_ps(y + m0, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum), scale), _mm256_loadu_ps(args.bias + m0)));
    }
    for (; m0 < args.m; ++m0) {  // the reference's two roundings, one output at a time
      const float scale = args.row_scales[r] * args.weight_scales[m0];
      const float scaled = static_cast<float>(sums[m0] - 128 * args.column_sums[m0]) * scale;
      y[m0] = scaled + args.bias[m0];
    }
  }
}

}  // namespace

const Int8KernelTable* int8_avx2_kernels() {
  static const Int8KernelTable table{quantize_avx2, gemm_avx2, epilogue_avx2};
  return &table;
}

}  // namespace lutmul::kernels
