// The 64-leaf scan with outputs in lanes, for AVX2 (include only from AVX2 translation units).
//
// Without vpermb, a 64-entry lookup of 32 rows is four vpshufb over the table's quarters and
// two blends, and the scan with rows in lanes took 2.0-2.5x the time of 16 leaves on Zen 3.
// Here each row instead adds, per codebook, the table row its code selects: 16 outputs'
// entries widened to 16-bit sums by one vpmovzxbw, one add. That work does not grow with
// the leaves (only the tables do: C · 64 · M bytes, in L2 for MiniLM-sized layers), and the
// sums come out with outputs in lanes, so Y's rows are stored without a transpose. At a few
// outputs a row fills a vector poorly, so the rows-in-lanes scan keeps ranges of fewer than
// kWideRowsMinOutputs outputs (docs/design.md, "64-leaf trees").
//
// Float Y only (GELU and accumulation as every scan applies them), at most 256 codebooks (the
// 16-bit sums); callers fall back to scan_wide_blocks otherwise. Y gets plain stores.
#pragma once

#include <immintrin.h>

#include <cstring>

#include <xsimd/xsimd.hpp>

#include "kernels/cpu/isa/store_prefix_avx2.h"
#include "kernels/cpu/maddness/maddness_kernels.h"
#include "kernels/cpu/runtime/vector_math.h"

namespace lutmul::kernels {
namespace {

// Below 9 outputs the rows-in-lanes scan is faster: it takes a tile of 8 outputs or a half
// tile of 4 at once, and at M = 10 (8 + 4) it took 109-115 µs against 97-102 µs here before
// scan_wide_rows_narrow (76 µs; N = 10,016, C = 16, Zen 3).
constexpr int64_t kWideRowsMinOutputs = 9;
constexpr int kWideRowsChunk = 128;          // outputs per pass: 8 accumulators of 16

inline bool wide_rows_apply(const ScanArgs& args, int64_t m_begin, int64_t m_end) {
  return args.wide_row_tables != nullptr && args.output == ScanOutput::f32 && args.ncodebooks <= 256 &&
         m_end - m_begin >= kWideRowsMinOutputs;
}

// Outputs [j, j + 16) of a row of Y (y at the chunk's first output), at most `count` - j of
// them, from 16 outputs' 16-bit sums: float(S)·scale + offset (two roundings, never fused, as
// the scalar reference), then the epilogue. scales and offsets: the chunk's, 8 a vector.
template <bool kGelu, bool kAccumulate, class Batch>
inline void store_sums(__m256i sums, const Batch* scales, const Batch* offsets, float* y, int j, int count) {
  for (int half = 0; half < 2; ++half, j += 8) {
    if (j >= count) return;
    const int here = count - j < 8 ? count - j : 8;
    const __m128i words = half ? _mm256_extracti128_si256(sums, 1) : _mm256_castsi256_si128(sums);
    Batch out = Batch(_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(words))) * scales[j / 8] + offsets[j / 8];
    if constexpr (kGelu) out = vector_gelu<xsimd::avx2>(out);
    if constexpr (kAccumulate) {
      alignas(32) float old[8] = {};
      for (int i = 0; i < here; ++i) old[i] = y[j + i];
      out = Batch::load_aligned(old) + out;
    }
    store_prefix_ps(y + j, out, here);
  }
}

// The chunk's scales and offsets as vectors, zeros past count, loaded once: reloading them
// from the stack between Y's stores cost 98 against 92 µs at M = 10 (Zen 3).
template <int kVectors, class Batch>
inline void load_chunk_scales(const ScanArgs& args, int64_t m0, int count, Batch (&scales)[2 * kVectors],
                              Batch (&offsets)[2 * kVectors]) {
  alignas(32) float scale_lanes[16 * kVectors] = {}, offset_lanes[16 * kVectors] = {};
  for (int i = 0; i < count; ++i) {
    scale_lanes[i] = args.scales[m0 + i];
    offset_lanes[i] = args.offsets[m0 + i];
  }
  for (int i = 0; i < 2 * kVectors; ++i) {
    scales[i] = Batch::load_aligned(scale_lanes + 8 * i);
    offsets[i] = Batch::load_aligned(offset_lanes + 8 * i);
  }
}

// Byte offset of the table row of the q-th code in `codes` (little-endian bytes). Only a
// code's low 6 bits count, as in the scalar reference, so no byte reads past its tables.
inline uint64_t table_row_offset(uint32_t codes, int q, int64_t stride) {
  return ((codes >> (8 * q)) & 0x3fu) * static_cast<uint64_t>(stride);
}

// Y's row of byte b of a block's codebook column: b/2 + 32·(b % 2).
inline int64_t row_of_byte(int64_t block, int byte) { return block * kBlockRows + byte / 2 + 32 * (byte % 2); }

// Outputs [m0, m0 + count) of the rows of blocks [block_begin, block_end), count ≤ 16 ·
// kVectors. kRows rows at a time, whose codes are kRows adjacent bytes of each codebook's
// column (byte b is row b/2 + 32·(b % 2)): one load gives them all, and kRows · kVectors
// independent sums keep the adds and loads in flight (at M = 10, N = 10,016 on Zen 3: one row
// at a time 157 µs, four 97-102 µs). The epilogue as template flags, so the plain product's
// loop has no branches on it. Up to 16 outputs take scan_wide_rows_narrow.
template <int kVectors, int kRows, bool kGelu, bool kAccumulate>
void scan_wide_rows_chunk(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m0, int count) {
  static_assert(kRows == 1 || kRows == 2 || kRows == 4, "rows per step: a byte, a word or a double word of codes");
  const int C = args.ncodebooks;
  const int64_t stride = wide_row_table_stride(args.outputs);
  const uint8_t* tables = args.wide_row_tables + m0;
  using Batch = xsimd::batch<float, xsimd::avx2>;
  Batch scales[2 * kVectors], offsets[2 * kVectors];
  load_chunk_scales<kVectors>(args, m0, count, scales, offsets);
  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint8_t* codes = args.packed + block * C * kBlockRows;
    for (int step = 0; step < kBlockRows; step += kRows) {
      __m256i sums[kRows][kVectors];
      for (int q = 0; q < kRows; ++q)
        for (int v = 0; v < kVectors; ++v) sums[q][v] = _mm256_setzero_si256();
      for (int c = 0; c < C; ++c) {
        uint32_t step_codes = 0;
        std::memcpy(&step_codes, codes + c * kBlockRows + step, kRows);
        const uint8_t* codebook_tables = tables + int64_t{c} * kWideLeaves * stride;
        for (int q = 0; q < kRows; ++q) {
          const uint8_t* entries = codebook_tables + table_row_offset(step_codes, q, stride);
          for (int v = 0; v < kVectors; ++v) {
            const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(entries + 16 * v));
            sums[q][v] = _mm256_add_epi16(sums[q][v], _mm256_cvtepu8_epi16(bytes));
          }
        }
      }
      for (int q = 0; q < kRows; ++q) {
        const int64_t row = row_of_byte(block, step + q);
        if (row >= args.rows) continue;
        for (int v = 0; v < kVectors; ++v)
          store_sums<kGelu, kAccumulate>(sums[q][v], scales, offsets, args.y + row * args.ldy + m0, 16 * v, count);
      }
    }
  }
}

// Eight codes of a codebook's column, each reduced to its low 6 bits. kStride16 (M ≤ 16,
// table rows of 16 bytes): doubled as well (at most 126, so each stays in its byte), so that
// an address scale of 8 steps over the rows with no shift per code (Zen 3 has one
// multiplier: four imul per codebook held four rows to 127 µs, against 97-102 µs by shifts).
template <bool kStride16>
inline uint64_t narrow_step_codes(const uint8_t* column) {
  uint64_t codes;
  std::memcpy(&codes, column, 8);
  codes &= 0x3f3f3f3f3f3f3f3full;
  return kStride16 ? codes + codes : codes;
}

// The table row that byte q of narrow_step_codes selects, widened to 16-bit entries.
template <bool kStride16>
inline __m256i narrow_entries(const uint8_t* codebook_tables, uint64_t codes, int q, int64_t stride) {
  const uint64_t index = (codes >> (8 * q)) & 0xffu;
  const uint8_t* row = codebook_tables + index * static_cast<uint64_t>(kStride16 ? 8 : stride);
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row)));
}

// Up to 16 outputs (one vector a row), eight rows at a time in named sums: one load of codes
// per codebook for eight lookups. GCC kept the generic loop's array of sums with four register
// moves per codebook (90-92 µs against 76 in named sums at M = 10, N = 10,016 on Zen 3, four
// rows at a time); eight rows and doubled codes take 0.87-0.93x the time of four rows with a
// shift and a mask per code (M = 10-16, same process).
template <bool kStride16, bool kGelu, bool kAccumulate>
void scan_wide_rows_narrow(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m0, int count) {
  const int C = args.ncodebooks;
  const int64_t stride = kStride16 ? 16 : wide_row_table_stride(args.outputs);
  const uint8_t* tables = args.wide_row_tables + m0;
  using Batch = xsimd::batch<float, xsimd::avx2>;
  Batch scales[2], offsets[2];
  load_chunk_scales<1>(args, m0, count, scales, offsets);
  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint8_t* codes = args.packed + block * C * kBlockRows;
    for (int step = 0; step < kBlockRows; step += 8) {
      __m256i sum0 = _mm256_setzero_si256(), sum1 = sum0, sum2 = sum0, sum3 = sum0;
      __m256i sum4 = sum0, sum5 = sum0, sum6 = sum0, sum7 = sum0;
      for (int c = 0; c < C; ++c) {
        const uint64_t step_codes = narrow_step_codes<kStride16>(codes + c * kBlockRows + step);
        const uint8_t* t = tables + int64_t{c} * kWideLeaves * stride;
        sum0 = _mm256_add_epi16(sum0, narrow_entries<kStride16>(t, step_codes, 0, stride));
        sum1 = _mm256_add_epi16(sum1, narrow_entries<kStride16>(t, step_codes, 1, stride));
        sum2 = _mm256_add_epi16(sum2, narrow_entries<kStride16>(t, step_codes, 2, stride));
        sum3 = _mm256_add_epi16(sum3, narrow_entries<kStride16>(t, step_codes, 3, stride));
        sum4 = _mm256_add_epi16(sum4, narrow_entries<kStride16>(t, step_codes, 4, stride));
        sum5 = _mm256_add_epi16(sum5, narrow_entries<kStride16>(t, step_codes, 5, stride));
        sum6 = _mm256_add_epi16(sum6, narrow_entries<kStride16>(t, step_codes, 6, stride));
        sum7 = _mm256_add_epi16(sum7, narrow_entries<kStride16>(t, step_codes, 7, stride));
      }
      const auto store = [&](__m256i sums, int q) {
        const int64_t row = row_of_byte(block, step + q);
        if (row < args.rows) store_sums<kGelu, kAccumulate>(sums, scales, offsets, args.y + row * args.ldy + m0, 0, count);
      };
      store(sum0, 0);
      store(sum1, 1);
      store(sum2, 2);
      store(sum3, 3);
      store(sum4, 4);
      store(sum5, 5);
      store(sum6, 6);
      store(sum7, 7);
    }
  }
}

template <int kVectors, int kRows, bool kStride16>
void scan_wide_rows_epilogue(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m0, int count) {
  constexpr auto chunk = [](bool gelu, bool accumulate) {
    if constexpr (kVectors == 1) {
      if (gelu) return accumulate ? scan_wide_rows_narrow<kStride16, true, true> : scan_wide_rows_narrow<kStride16, true, false>;
      return accumulate ? scan_wide_rows_narrow<kStride16, false, true> : scan_wide_rows_narrow<kStride16, false, false>;
    } else {
      if (gelu) return accumulate ? scan_wide_rows_chunk<kVectors, kRows, true, true>
                                  : scan_wide_rows_chunk<kVectors, kRows, true, false>;
      return accumulate ? scan_wide_rows_chunk<kVectors, kRows, false, true>
                        : scan_wide_rows_chunk<kVectors, kRows, false, false>;
    }
  };
  chunk(args.gelu, args.accumulate)(args, block_begin, block_end, m0, count);
}

// At most 8 sums in registers: 4 rows of up to 32 outputs, 2 of up to 64, else 1.
template <int kVectors>
void scan_wide_rows_with(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m0, int count) {
  constexpr int kRows = kVectors <= 2 ? 4 : kVectors <= 4 ? 2 : 1;  // kVectors 1: scan_wide_rows_narrow
  if (kVectors == 1 && wide_row_table_stride(args.outputs) == 16)
    return scan_wide_rows_epilogue<kVectors, kRows, kVectors == 1>(args, block_begin, block_end, m0, count);
  scan_wide_rows_epilogue<kVectors, kRows, false>(args, block_begin, block_end, m0, count);
}

// A ScanFn's work, where wide_rows_apply: rows of blocks [block_begin, block_end), outputs
// [m_begin, m_end) a chunk at a time (a chunk's tables stay in L2 across the rows).
inline void scan_wide_rows(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                           int64_t m_end) {
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kWideRowsChunk) {
    const int count = m_end - m0 < kWideRowsChunk ? static_cast<int>(m_end - m0) : kWideRowsChunk;
    switch ((count + 15) / 16) {
      case 1: scan_wide_rows_with<1>(args, block_begin, block_end, m0, count); break;
      case 2: scan_wide_rows_with<2>(args, block_begin, block_end, m0, count); break;
      case 3: scan_wide_rows_with<3>(args, block_begin, block_end, m0, count); break;
      case 4: scan_wide_rows_with<4>(args, block_begin, block_end, m0, count); break;
      case 5: scan_wide_rows_with<5>(args, block_begin, block_end, m0, count); break;
      case 6: scan_wide_rows_with<6>(args, block_begin, block_end, m0, count); break;
      case 7: scan_wide_rows_with<7>(args, block_begin, block_end, m0, count); break;
      default: scan_wide_rows_with<8>(args, block_begin, block_end, m0, count); break;
    }
  }
}

}  // namespace
}  // namespace lutmul::kernels
