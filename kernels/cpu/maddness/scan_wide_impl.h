// The scan for 64-leaf trees, written once over an ISA's primitives (Ops) and instantiated
// per ISA. One byte per (row, codebook) holds a 6-bit code; Ops::lookup64 looks each of a
// vector's codes up in the codebook's 64-byte table (one vpermb with AVX-512 VBMI, one tbl
// of four registers on NEON, four vpshufb and two blends elsewhere). Sums are kept as in
// scan_impl.h: exact 16-bit words holding row w in the low byte and row 32 + w in the high
// byte, plus the high bytes alone, in rounds of at most 256 codebooks so no sum wraps.
#pragma once

#include "kernels/cpu/maddness/maddness_kernels.h"
#include "kernels/cpu/maddness/scan_impl.h"

namespace lutmul::kernels {
namespace {

constexpr int kWideCodebooksPerRound = 256;  // 256 · 255 < 2^16

template <class Ops>
inline void accumulate_wide_tile(const uint8_t* codes, int part, int c_begin, int c_end,
                                 const uint8_t* const* tables, int valid_outputs, uint32_t* sums) {
  using Bytes = typename Ops::Bytes;
  constexpr int kTile = Ops::kOutputTile;
  constexpr int kWidth = Ops::kByteWidth;
  Bytes words[kTile], high[kTile];
  for (int i = 0; i < kTile; ++i) words[i] = high[i] = Ops::zero_bytes();

  for (int c = c_begin; c < c_end; ++c) {
    const Bytes code = Ops::load_bytes(codes + c * kBlockRows + part * kWidth);
    for (int i = 0; i < kTile; ++i) {
      const Bytes entry = Ops::lookup64(tables[i] + c * kWideLeaves, code);
      words[i] = Ops::add_u16(words[i], entry);
      high[i] = Ops::add_u16(high[i], Ops::high_bytes_u16(entry));
    }
  }

  store_word_sums<Ops, kTile>(words, high, valid_outputs, c_begin == 0, part, sums);
}

template <class Ops>
void scan_wide_blocks(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                      int64_t m_end) {
  constexpr int kTile = Ops::kOutputTile;
  constexpr int kParts = kBlockRows / Ops::kByteWidth;
  const int C = args.ncodebooks;
  alignas(64) uint32_t sums[kChunkOutputs * kBlockRows];
  BlockWriter<Ops, false> writer(args, m_begin, m_end);

  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint8_t* codes = args.packed + block * C * kBlockRows;
    const int64_t row0 = block * kBlockRows;
    const int valid_rows = args.rows - row0 < kBlockRows ? static_cast<int>(args.rows - row0) : kBlockRows;
    for (int64_t chunk = m_begin; chunk < m_end; chunk += kChunkOutputs) {
      const int count = m_end - chunk < kChunkOutputs ? static_cast<int>(m_end - chunk) : kChunkOutputs;
      for (int t = 0; t < count; t += kTile) {
        const int valid_outputs = count - t < kTile ? count - t : kTile;
        const uint8_t* tables[kTile];
        for (int i = 0; i < kTile; ++i) {
          const int64_t m = chunk + t + (i < valid_outputs ? i : valid_outputs - 1);
          tables[i] = args.tables + m * C * kWideLeaves;
        }
        for (int part = 0; part < kParts; ++part)
          for (int c = 0; c < C; c += kWideCodebooksPerRound) {
            const int end = C - c < kWideCodebooksPerRound ? C : c + kWideCodebooksPerRound;
            accumulate_wide_tile<Ops>(codes, part, c, end, tables, valid_outputs, sums + t * kBlockRows);
          }
      }
      writer.write(sums, row0, valid_rows, chunk, count);
    }
    writer.end_block(row0, valid_rows);
  }
}

}  // namespace
}  // namespace lutmul::kernels
