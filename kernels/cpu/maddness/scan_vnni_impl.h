// The scan for AVX-512 VBMI + VNNI (Ice Lake, Zen 4 and later), exact accumulation.
//
// vpermb looks up 64 bytes in a 64-byte table: the tables of a codebook quad (two pairs,
// 4 × 16 entries, contiguous in the table layout). Index bytes are laid out as
// [code_a, 16 + code_b, 32 + code_c, 48 + code_d] per row, so one vpermb gives 16 rows ×
// 4 codebooks and one vpdpbusd (against a vector of ones) adds each row's four entries
// into its 32-bit sum: two instructions per 64 lookups, no widening, no overflow.
// The index vectors are built once per block from the packed nibbles and reused by
// every output.
//
// Up to 32 quads (C <= 128), a tile of 16 outputs × 16 rows is summed in registers and
// converted, transposed and stored from them: the sums never go through memory, which cost
// about as much as the lookups on Sapphire Rapids (docs/experiments.md, "Sapphire Rapids,
// third session"). A narrower last tile does the lookups of its outputs rounded up to even.
// Larger C sums rounds of 32 quads in L1 and writes them through BlockWriter.
#pragma once

#include <immintrin.h>

#include "kernels/cpu/isa/kernel_inline.h"
#include "kernels/cpu/maddness/maddness_kernels.h"
#include "kernels/cpu/maddness/scan_impl.h"

namespace lutmul::kernels {
namespace {

constexpr int kQuadsPerRound = 32;  // index vectors of 32 quads: 32 KiB on the stack
constexpr int kVnniOutputTile = 4;
constexpr int kRegisterOutputs = 16;  // one 16 × 16 transpose

// Row permutation applied to a pair's 64 packed bytes so that, after the byte and word
// unpacks below, index vector j holds rows 16j .. 16j + 15 in order.
inline __m512i row_order_for_unpacks() {
  alignas(64) int8_t perm[64];
  for (int lane = 0; lane < 4; ++lane)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 4; ++i) {
        const int row = 16 * j + 4 * lane + i;
        perm[16 * lane + 4 * j + i] = static_cast<int8_t>(packed_byte_offset(0, row));
      }
  return _mm512_load_si512(perm);
}

// Index vectors of one quad (pairs p, p + 1; p + 1 may be absent) for the 64 rows.
inline void build_quad_indices(const uint8_t* codes, int p, bool has_second, __m512i order, __m512i* out) {
  const __m512i nibble = _mm512_set1_epi8(15);
  const __m512i first = _mm512_permutexvar_epi8(order, _mm512_loadu_si512(codes + p * kBlockRows));
  const __m512i second = has_second ? _mm512_permutexvar_epi8(order, _mm512_loadu_si512(codes + (p + 1) * kBlockRows))
                                    : _mm512_setzero_si512();
  const __m512i a = _mm512_and_si512(first, nibble);
  const __m512i b = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(first, 4), nibble), _mm512_set1_epi8(16));
  const __m512i c = _mm512_or_si512(_mm512_and_si512(second, nibble), _mm512_set1_epi8(32));
  const __m512i d = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(second, 4), nibble), _mm512_set1_epi8(48));
  const __m512i ab_lo = _mm512_unpacklo_epi8(a, b), ab_hi = _mm512_unpackhi_epi8(a, b);
  const __m512i cd_lo = _mm512_unpacklo_epi8(c, d), cd_hi = _mm512_unpackhi_epi8(c, d);
  out[0] = _mm512_unpacklo_epi16(ab_lo, cd_lo);
  out[1] = _mm512_unpackhi_epi16(ab_lo, cd_lo);
  out[2] = _mm512_unpacklo_epi16(ab_hi, cd_hi);
  out[3] = _mm512_unpackhi_epi16(ab_hi, cd_hi);
}

// The quad's 64 table bytes; a lone last pair reads 32 bytes and zeroes the rest.
inline __m512i load_quad_table(const uint8_t* table, bool has_second) {
  return has_second ? _mm512_loadu_si512(table) : _mm512_maskz_loadu_epi8(0xFFFFFFFFull, table);
}

// More than kQuadsPerRound quads: block sums in L1, a round of quads at a time.
void scan_blocks_vnni_in_rounds(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin, int64_t m_end) {
  const int nquads = (args.npairs + 1) / 2;
  const __m512i order = row_order_for_unpacks();
  const __m512i ones = _mm512_set1_epi8(1);
  alignas(64) uint32_t sums[kChunkOutputs * kBlockRows];
  alignas(64) __m512i indices[kQuadsPerRound * 4];
  BlockWriter<Avx512Ops, false> writer(args, m_begin, m_end);

  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint8_t* codes = args.packed + block * args.npairs * kBlockRows;
    const int64_t row0 = block * kBlockRows;
    const int valid_rows = args.rows - row0 < kBlockRows ? static_cast<int>(args.rows - row0) : kBlockRows;
    for (int64_t chunk = m_begin; chunk < m_end; chunk += kChunkOutputs) {
      const int count = m_end - chunk < kChunkOutputs ? static_cast<int>(m_end - chunk) : kChunkOutputs;
      for (int q0 = 0; q0 < nquads; q0 += kQuadsPerRound) {
        const int q1 = nquads - q0 < kQuadsPerRound ? nquads : q0 + kQuadsPerRound;
        for (int q = q0; q < q1; ++q) build_quad_indices(codes, 2 * q, 2 * q + 1 < args.npairs, order, &indices[(q - q0) * 4]);
        for (int t = 0; t < count; t += kVnniOutputTile) {
          const int valid = count - t < kVnniOutputTile ? count - t : kVnniOutputTile;
          const uint8_t* tables[kVnniOutputTile];
          for (int i = 0; i < kVnniOutputTile; ++i)
            tables[i] = args.tables + (chunk + t + (i < valid ? i : valid - 1)) * args.npairs * kPairBytes;
          __m512i acc[kVnniOutputTile][4];
          for (int i = 0; i < kVnniOutputTile; ++i)
            for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_si512();
          for (int q = q0; q < q1; ++q) {
            const bool has_second = 2 * q + 1 < args.npairs;
            const __m512i* idx = &indices[(q - q0) * 4];
            for (int i = 0; i < kVnniOutputTile; ++i) {
              const __m512i table = load_quad_table(tables[i] + 2 * q * kPairBytes, has_second);
              for (int j = 0; j < 4; ++j)
                acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], _mm512_permutexvar_epi8(idx[j], table), ones);
            }
          }
          // Constant trip counts keep the accumulators in registers.
          for (int i = 0; i < kVnniOutputTile; ++i) {
            if (i >= valid) break;
            uint32_t* out = sums + (t + i) * kBlockRows;
            for (int j = 0; j < 4; ++j) {
              __m512i* dst = reinterpret_cast<__m512i*>(out + 16 * j);
              *dst = q0 == 0 ? acc[i][j] : _mm512_add_epi32(*dst, acc[i][j]);
            }
          }
        }
      }
      writer.write(sums, row0, valid_rows, chunk, count);
    }
    writer.end_block(row0, valid_rows);
  }
}

// acc + the four-byte dot products of u8 and s8 bytes (vpdpbusd), the accumulator kept in its
// register: with the intrinsic, GCC 12 copies each of a 16-register tile's accumulators into
// a temporary and back around every vpdpbusd, three instructions for one.
LUTMUL_KERNEL_INLINE __m512i dpbusd_in_place(__m512i acc, __m512i u8, __m512i s8) {
  asm("vpdpbusd %[s8], %[u8], %[acc]" : [acc] "+v"(acc) : [u8] "v"(u8), [s8] "v"(s8));
  return acc;
}

// kOut outputs (tables[i], the last repeated past cols) for rows 16g .. 16g + rows_here − 1 of
// a block, summed over every quad in registers, then stored at `at` of dest through `finish`.
template <ScanOutput kOutput, int kOut>
LUTMUL_KERNEL_INLINE void scan_register_tile(const ScanArgs& dest, const __m512i* indices, int npairs, int g,
                                            const uint8_t* const* tables, int cols, int64_t at, int rows_here,
                                            const OutputColumns<Avx512Ops, kOutput>& finish) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc[kOut];
  for (int i = 0; i < kOut; ++i) acc[i] = _mm512_setzero_si512();
  const int full_quads = npairs / 2;
  for (int q = 0; q < full_quads; ++q) {
    const __m512i idx = indices[4 * q + g];
    for (int i = 0; i < kOut; ++i)
      acc[i] = dpbusd_in_place(acc[i], _mm512_permutexvar_epi8(idx, _mm512_loadu_si512(tables[i] + 2 * q * kPairBytes)), ones);
  }
  if (npairs % 2 != 0) {
    const __m512i idx = indices[4 * full_quads + g];
    for (int i = 0; i < kOut; ++i)
      acc[i] = dpbusd_in_place(acc[i], _mm512_permutexvar_epi8(idx, load_quad_table(tables[i] + 2 * full_quads * kPairBytes, false)), ones);
  }
  store_register_tile<Avx512Ops, kOutput, kOut>(dest, [&](int i) { return acc[i]; }, at, rows_here, cols, finish);
}

template <ScanOutput kOutput>
void scan_blocks_in_registers(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                              int64_t m_end) {
  const int nquads = (args.npairs + 1) / 2;
  const __m512i order = row_order_for_unpacks();
  alignas(64) __m512i indices[kQuadsPerRound * 4];
  BlockWriter<Avx512Ops, false> writer(args, m_begin, m_end);
  const ScanArgs& dest = writer.target();

  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint8_t* codes = args.packed + block * args.npairs * kBlockRows;
    const int64_t row0 = block * kBlockRows;
    const int valid_rows = args.rows - row0 < kBlockRows ? static_cast<int>(args.rows - row0) : kBlockRows;
    for (int q = 0; q < nquads; ++q) build_quad_indices(codes, 2 * q, 2 * q + 1 < args.npairs, order, &indices[4 * q]);
    for (int64_t m = m_begin; m < m_end; m += kRegisterOutputs) {
      const int cols = m_end - m < kRegisterOutputs ? static_cast<int>(m_end - m) : kRegisterOutputs;
      const uint8_t* tables[kRegisterOutputs];
      for (int i = 0; i < kRegisterOutputs; ++i) tables[i] = args.tables + (m + (i < cols ? i : cols - 1)) * args.npairs * kPairBytes;
      const OutputColumns<Avx512Ops, kOutput> finish(dest, writer.target_output(m), cols);
      for (int g = 0; 16 * g < valid_rows; ++g) {
        const int rows_here = valid_rows - 16 * g < 16 ? valid_rows - 16 * g : 16;
        const int64_t at = (writer.target_row(row0) + 16 * g) * dest.ldy + writer.target_output(m);
        with_even_width(cols, [&](auto width) {
          scan_register_tile<kOutput, decltype(width)::value>(dest, indices, args.npairs, g, tables, cols, at, rows_here, finish);
        });
      }
    }
    writer.end_block(row0, valid_rows);
  }
}

void scan_blocks_vnni(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin, int64_t m_end) {
  if ((args.npairs + 1) / 2 > kQuadsPerRound) return scan_blocks_vnni_in_rounds(args, block_begin, block_end, m_begin, m_end);
  switch (args.output) {
    case ScanOutput::f32:
      return scan_blocks_in_registers<ScanOutput::f32>(args, block_begin, block_end, m_begin, m_end);
    case ScanOutput::bf16:
      return scan_blocks_in_registers<ScanOutput::bf16>(args, block_begin, block_end, m_begin, m_end);
    case ScanOutput::sums:
      return scan_blocks_in_registers<ScanOutput::sums>(args, block_begin, block_end, m_begin, m_end);
  }
}
}  // namespace
}  // namespace lutmul::kernels
