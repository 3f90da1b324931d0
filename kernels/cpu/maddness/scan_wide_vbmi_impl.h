// The 64-leaf scan for AVX-512 VBMI (Ice Lake, Zen 4 and later), C <= 256.
//
// vpermt2b looks 64 bytes up in a 128-byte table: the 64-entry tables of a codebook pair
// (2c, 2c + 1), contiguous in the table layout. Index bytes are laid out as [code of 2c,
// 64 + code of 2c + 1] per row, so one vpermt2b gives 32 rows × 2 codebooks and one
// vpmaddubsw (against ones) adds each row's two entries into a 16-bit word: three
// instructions per 64 lookups against four in scan_wide_impl.h (vpermb, a shift and two adds),
// though vpermt2b takes two cycles of port 5 on Sapphire Rapids, so the cycles per lookup are
// about the same; the gain is summing in registers. Words of a 32-bit lane hold rows r and
// r + 16, so a mask and a shift give two tiles of 16 rows in order. 16-bit sums are exact up
// to 257 codebooks.
//
// As in scan_vnni_impl.h, a tile of 16 outputs × 32 rows is summed in registers and converted,
// transposed and stored from them; a narrower last tile does the lookups of its outputs
// rounded up to even. The index vectors are built once per block and reused by every output.
#pragma once

#include <immintrin.h>

#include "kernels/cpu/isa/kernel_inline.h"
#include "kernels/cpu/maddness/maddness_kernels.h"
#include "kernels/cpu/maddness/scan_impl.h"
#include "kernels/cpu/maddness/scan_wide_impl.h"

namespace lutmul::kernels {
namespace {

constexpr int kWideVbmiMostCodebooks = 256;  // a row's sum, at most 256 · 255, fits a 16-bit word
constexpr int kWideRegisterOutputs = 16;     // one 16 × 16 transpose per 16 rows

// Byte selectors of the two index vectors of a codebook pair (half h: rows 32h .. 32h + 31):
// bytes 4k .. 4k + 3 are [2c of row 32h + k, 2c + 1 of it, 2c of row 32h + 16 + k, 2c + 1 of
// it], picked from the two codebooks' packed 64-byte columns (the second at 64 + its offset).
inline __m512i wide_pair_selector(int h) {
  alignas(64) int8_t sel[64];
  for (int k = 0; k < 16; ++k)
    for (int part = 0; part < 2; ++part) {
      const int row = 32 * h + 16 * part + k;
      const auto at = static_cast<int8_t>(packed_byte_offset(0, row));
      sel[4 * k + 2 * part] = at;
      sel[4 * k + 2 * part + 1] = static_cast<int8_t>(64 + at);
    }
  return _mm512_load_si512(sel);
}

// acc + x in 16-bit words, the accumulator kept in its register (GCC 12 copies a tile's
// accumulators into temporaries and back around the intrinsic's vpaddw, as around vpdpbusd).
LUTMUL_KERNEL_INLINE __m512i add_words_in_place(__m512i acc, __m512i x) {
  asm("vpaddw %[x], %[acc], %[acc]" : [acc] "+v"(acc) : [x] "v"(x));
  return acc;
}

// kOut outputs (tables[i], the last repeated past cols) for rows 32h .. 32h + 31 of a block,
// summed over every codebook pair in registers, then stored as two tiles of 16 rows at `at`
// (rows 32h) of dest, rows_here rows in all.
template <ScanOutput kOutput, int kOut>
LUTMUL_KERNEL_INLINE void scan_wide_register_tile(const ScanArgs& dest, const __m512i* indices, int ncodebooks, int h,
                                                 const uint8_t* const* tables, int cols, int64_t at, int rows_here,
                                                 const OutputColumns<Avx512Ops, kOutput>& finish) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc[kOut];
  for (int i = 0; i < kOut; ++i) acc[i] = _mm512_setzero_si512();
  const int pairs = ncodebooks / 2;
  for (int p = 0; p < pairs; ++p) {
    const __m512i idx = indices[2 * p + h];
    for (int i = 0; i < kOut; ++i) {
      const uint8_t* table = tables[i] + 2 * p * kWideLeaves;
      const __m512i entries = _mm512_permutex2var_epi8(_mm512_loadu_si512(table), idx, _mm512_loadu_si512(table + kWideLeaves));
      acc[i] = add_words_in_place(acc[i], _mm512_maddubs_epi16(entries, ones));
    }
  }
  if (ncodebooks % 2 != 0) {  // the last codebook alone: its partner's entries are zeros
    const __m512i idx = indices[2 * pairs + h];
    for (int i = 0; i < kOut; ++i) {
      const __m512i entries = _mm512_permutex2var_epi8(_mm512_loadu_si512(tables[i] + 2 * pairs * kWideLeaves), idx,
                                                       _mm512_setzero_si512());
      acc[i] = add_words_in_place(acc[i], _mm512_maddubs_epi16(entries, ones));
    }
  }
  const __m512i low_words = _mm512_set1_epi32(0xFFFF);
  for (int part = 0; part < 2 && 16 * part < rows_here; ++part) {
    const int rows = rows_here - 16 * part < 16 ? rows_here - 16 * part : 16;
    const auto sums_of = [&](int i) { return part == 0 ? _mm512_and_si512(acc[i], low_words) : _mm512_srli_epi32(acc[i], 16); };
    store_register_tile<Avx512Ops, kOutput, kOut>(dest, sums_of, at + 16 * part * dest.ldy, rows, cols, finish);
  }
}

template <ScanOutput kOutput>
void scan_wide_blocks_in_registers(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                                   int64_t m_end) {
  const int C = args.ncodebooks;
  const __m512i selectors[2] = {wide_pair_selector(0), wide_pair_selector(1)};
  alignas(64) __m512i indices[kWideVbmiMostCodebooks];  // (pair, half): 16 KiB at C = 256
  BlockWriter<Avx512Ops, false> writer(args, m_begin, m_end);
  const ScanArgs& dest = writer.target();

  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint8_t* codes = args.packed + block * C * kBlockRows;
    const int64_t row0 = block * kBlockRows;
    const int valid_rows = args.rows - row0 < kBlockRows ? static_cast<int>(args.rows - row0) : kBlockRows;
    for (int c = 0; c < C; c += 2) {
      const __m512i first = _mm512_loadu_si512(codes + c * kBlockRows);
      // The second codebook's codes select from the upper table (bit 6); a lone last codebook
      // has none, and its partner's entry 0 is in a register of zeros.
      const __m512i upper = _mm512_set1_epi8(64);
      const __m512i second = c + 1 < C ? _mm512_or_si512(_mm512_loadu_si512(codes + (c + 1) * kBlockRows), upper) : upper;
      for (int h = 0; h < 2; ++h) indices[c + h] = _mm512_permutex2var_epi8(first, selectors[h], second);
    }
    for (int64_t m = m_begin; m < m_end; m += kWideRegisterOutputs) {
      const int cols = m_end - m < kWideRegisterOutputs ? static_cast<int>(m_end - m) : kWideRegisterOutputs;
      const uint8_t* tables[kWideRegisterOutputs];
      for (int i = 0; i < kWideRegisterOutputs; ++i)
        tables[i] = args.tables + (m + (i < cols ? i : cols - 1)) * C * kWideLeaves;
      const OutputColumns<Avx512Ops, kOutput> finish(dest, writer.target_output(m), cols);
      for (int h = 0; 32 * h < valid_rows; ++h) {
        const int rows_here = valid_rows - 32 * h < 32 ? valid_rows - 32 * h : 32;
        const int64_t at = (writer.target_row(row0) + 32 * h) * dest.ldy + writer.target_output(m);
        with_even_width(cols, [&](auto width) {
          scan_wide_register_tile<kOutput, decltype(width)::value>(dest, indices, C, h, tables, cols, at, rows_here, finish);
        });
      }
    }
    writer.end_block(row0, valid_rows);
  }
}

void scan_wide_blocks_vbmi(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                           int64_t m_end) {
  if (args.ncodebooks > kWideVbmiMostCodebooks)
    return scan_wide_blocks<Avx512Ops>(args, block_begin, block_end, m_begin, m_end);
  switch (args.output) {
    case ScanOutput::f32:
      return scan_wide_blocks_in_registers<ScanOutput::f32>(args, block_begin, block_end, m_begin, m_end);
    case ScanOutput::bf16:
      return scan_wide_blocks_in_registers<ScanOutput::bf16>(args, block_begin, block_end, m_begin, m_end);
    case ScanOutput::sums:
      return scan_wide_blocks_in_registers<ScanOutput::sums>(args, block_begin, block_end, m_begin, m_end);
  }
}

}  // namespace
}  // namespace lutmul::kernels
