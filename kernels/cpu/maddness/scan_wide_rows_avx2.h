// The 64-leaf scan with outputs in lanes, for AVX2 (include only from AVX2 translation units).
//
// Without vpermb, a 64-entry lookup of 32 rows is four vpshufb over the table's quarters and
// two blends, and the scan with rows in lanes took 2.0-2.5x the time of 16 leaves on Zen 3.
// Here each row instead adds, per codebook, the table row its code selects: 16 outputs'
// entries widened to 16-bit sums by one vpmovzxbw, one add. That work does not grow with
// the leaves (only the tables do: C · 64 · M bytes, in L2 for MiniLM-sized layers), and the
// sums come out with outputs in lanes, so Y's rows are stored without a transpose. At a few
// outputs a row fills a vector poorly, so the rows-in-lanes scan keeps M below
// kWideRowsMinOutputs (docs/design.md, "64-leaf trees").
//
// Float Y only (GELU and accumulation as every scan applies them), at most 256 codebooks (the
// 16-bit sums); callers fall back to scan_wide_blocks otherwise. Y gets plain stores.
#pragma once

#include <immintrin.h>

#include <xsimd/xsimd.hpp>

#include "kernels/cpu/isa/store_prefix_avx2.h"
#include "kernels/cpu/maddness/maddness_kernels.h"
#include "kernels/cpu/runtime/vector_math.h"

namespace lutmul::kernels {
namespace {

constexpr int64_t kWideRowsMinOutputs = 24;  // below it the rows-in-lanes scan is faster
constexpr int kWideRowsChunk = 128;          // outputs per pass: 8 accumulators of 16

inline bool wide_rows_apply(const ScanArgs& args, int64_t m_begin, int64_t m_end) {
  return args.wide_row_tables != nullptr && args.output == ScanOutput::f32 && args.ncodebooks <= 256 &&
         m_end - m_begin >= kWideRowsMinOutputs;
}

// Outputs [m0, m0 + count) of rows [row_begin, row_end), count ≤ 16 · kVectors; the epilogue
// as template flags, so the plain product's row loop has no branches on it.
template <int kVectors, bool kGelu, bool kAccumulate>
void scan_wide_rows_chunk(const ScanArgs& args, int64_t row_begin, int64_t row_end, int64_t m0, int count) {
  using Batch = xsimd::batch<float, xsimd::avx2>;
  const int C = args.ncodebooks;
  const int64_t stride = wide_row_table_stride(args.outputs);
  const uint8_t* tables = args.wide_row_tables + m0;
  // The chunk's scales and offsets, zeros past count, so every row loads whole vectors.
  alignas(32) float scales[16 * kVectors] = {}, offsets[16 * kVectors] = {};
  for (int i = 0; i < count; ++i) {
    scales[i] = args.scales[m0 + i];
    offsets[i] = args.offsets[m0 + i];
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int r = static_cast<int>(row % kBlockRows);
    const uint8_t* codes = args.packed + row / kBlockRows * C * kBlockRows + packed_byte_offset(0, r);
    __m256i sums[kVectors];
    for (int v = 0; v < kVectors; ++v) sums[v] = _mm256_setzero_si256();
    for (int c = 0; c < C; ++c) {
      const uint8_t* entries = tables + (int64_t{c} * kWideLeaves + codes[c * kBlockRows]) * stride;
      for (int v = 0; v < kVectors; ++v) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(entries + 16 * v));
        sums[v] = _mm256_add_epi16(sums[v], _mm256_cvtepu8_epi16(bytes));
      }
    }
    float* y = args.y + row * args.ldy + m0;
    for (int v = 0; v < kVectors; ++v)
      for (int half = 0; half < 2; ++half) {
        const int j = 16 * v + 8 * half;
        if (j >= count) break;
        const int here = count - j < 8 ? count - j : 8;
        const __m128i words = half ? _mm256_extracti128_si256(sums[v], 1) : _mm256_castsi256_si128(sums[v]);
        // Two roundings (multiply, then add), never fused, as the scalar reference.
        Batch out = Batch(_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(words))) * Batch::load_aligned(scales + j) +
                    Batch::load_aligned(offsets + j);
        if constexpr (kGelu) out = vector_gelu<xsimd::avx2>(out);
        if constexpr (kAccumulate) {
          alignas(32) float old[8] = {};
          for (int i = 0; i < here; ++i) old[i] = y[j + i];
          out = Batch::load_aligned(old) + out;
        }
        store_prefix_ps(y + j, out, here);
      }
  }
}

template <int kVectors>
void scan_wide_rows_with(const ScanArgs& args, int64_t row_begin, int64_t row_end, int64_t m0, int count) {
  if (args.gelu) {
    if (args.accumulate) return scan_wide_rows_chunk<kVectors, true, true>(args, row_begin, row_end, m0, count);
    return scan_wide_rows_chunk<kVectors, true, false>(args, row_begin, row_end, m0, count);
  }
  if (args.accumulate) return scan_wide_rows_chunk<kVectors, false, true>(args, row_begin, row_end, m0, count);
  scan_wide_rows_chunk<kVectors, false, false>(args, row_begin, row_end, m0, count);
}

// A ScanFn's work, where wide_rows_apply: rows of blocks [block_begin, block_end), outputs
// [m_begin, m_end) a chunk at a time (a chunk's tables stay in L2 across the rows).
inline void scan_wide_rows(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                           int64_t m_end) {
  const int64_t row_begin = block_begin * kBlockRows;
  const int64_t row_end = block_end * kBlockRows < args.rows ? block_end * kBlockRows : args.rows;
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kWideRowsChunk) {
    const int count = m_end - m0 < kWideRowsChunk ? static_cast<int>(m_end - m0) : kWideRowsChunk;
    switch ((count + 15) / 16) {
      case 1: scan_wide_rows_with<1>(args, row_begin, row_end, m0, count); break;
      case 2: scan_wide_rows_with<2>(args, row_begin, row_end, m0, count); break;
      case 3: scan_wide_rows_with<3>(args, row_begin, row_end, m0, count); break;
      case 4: scan_wide_rows_with<4>(args, row_begin, row_end, m0, count); break;
      case 5: scan_wide_rows_with<5>(args, row_begin, row_end, m0, count); break;
      case 6: scan_wide_rows_with<6>(args, row_begin, row_end, m0, count); break;
      case 7: scan_wide_rows_with<7>(args, row_begin, row_end, m0, count); break;
      default: scan_wide_rows_with<8>(args, row_begin, row_end, m0, count); break;
    }
  }
}

}  // namespace
}  // namespace lutmul::kernels
