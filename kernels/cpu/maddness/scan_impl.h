// The scan, written once over an ISA's primitives (Ops) and instantiated per ISA.
//
// For one block of 64 rows, a tile of Ops::kOutputTile outputs at a time: each codebook
// pair's codes (64 bytes) are split into nibbles once and looked up in every output's two
// 16-entry tables (vpshufb / tbl). Sums are exact 16-bit words: a word holds row w in its
// low byte and row 32 + w in its high byte, so adding whole words and, separately, the
// high bytes gives both rows' sums (low = words − high·256) without unpacking. Rounds of
// at most 128 pairs (256 when averaging) keep every sum below 2^16. The block's integer
// sums for up to 64 outputs stay in L1, then are scaled to float and transposed into the
// row-major output, through the epilogue (GELU, accumulation into Y) as they are stored.
#pragma once

#include <xsimd/xsimd.hpp>

#include "kernels/cpu/maddness/maddness_kernels.h"
#include "kernels/cpu/runtime/vector_math.h"

namespace lutmul::kernels {
namespace {

constexpr int kChunkOutputs = 64;  // outputs whose block sums are kept at once (16 KiB)

// Stores (first round) or adds a tile's 16-bit sums as 32-bit row sums: words hold row w
// (low byte) + 256 · row 32 + w, high the sums of the high bytes, so low = words − high·256.
template <class Ops>
inline void store_word_sums(typename Ops::Bytes* words, typename Ops::Bytes* high, int valid_outputs, bool first_round,
                            int part, uint32_t* sums) {
  const int row_offset = part * (Ops::kByteWidth / 2);
  // Constant trip count (and a break) keeps the accumulators in registers.
  for (int i = 0; i < Ops::kOutputTile; ++i) {
    if (i >= valid_outputs) break;
    const typename Ops::Bytes low_rows = Ops::sub_u16(words[i], Ops::shift_left_8_u16(high[i]));
    uint32_t* out = sums + i * kBlockRows;
    if (first_round) {
      Ops::store_words(low_rows, out + row_offset);
      Ops::store_words(high[i], out + 32 + row_offset);
    } else {
      Ops::add_words(low_rows, out + row_offset);
      Ops::add_words(high[i], out + 32 + row_offset);
    }
  }
}

template <class Ops, bool kAveraged>
inline void accumulate_tile(const uint8_t* codes, int part, int pair_begin, int pair_end,
                            const uint8_t* const* tables, int valid_outputs, uint32_t* sums) {
  using Bytes = typename Ops::Bytes;
  constexpr int kTile = Ops::kOutputTile;
  constexpr int kWidth = Ops::kByteWidth;
  Bytes words[kTile], high[kTile];
  for (int i = 0; i < kTile; ++i) words[i] = high[i] = Ops::zero_bytes();

  for (int p = pair_begin; p < pair_end; ++p) {
    const Bytes packed = Ops::load_bytes(codes + p * kBlockRows + part * kWidth);
    const Bytes low_codes = Ops::low_nibbles(packed);
    const Bytes high_codes = Ops::high_nibbles(packed);
    for (int i = 0; i < kTile; ++i) {
      const uint8_t* table = tables[i] + p * kPairBytes;
      const Bytes first = Ops::lookup(Ops::broadcast_table(table), low_codes);
      const Bytes second = Ops::lookup(Ops::broadcast_table(table + 16), high_codes);
      if constexpr (kAveraged) {
        const Bytes mean = Ops::average_u8(first, second);
        words[i] = Ops::add_u16(words[i], mean);
        high[i] = Ops::add_u16(high[i], Ops::high_bytes_u16(mean));
      } else {
        words[i] = Ops::add_u16(words[i], first);
        high[i] = Ops::add_u16(high[i], Ops::high_bytes_u16(first));
        words[i] = Ops::add_u16(words[i], second);
        high[i] = Ops::add_u16(high[i], Ops::high_bytes_u16(second));
      }
    }
  }

  store_word_sums<Ops>(words, high, valid_outputs, pair_begin == 0, part, sums);
}

// y[row][m] = float(sum) * scales[m] + offsets[m] for the block's valid rows and `count` outputs,
// then the epilogue (finish_output in maddness_kernels.h; GELU by the runtime's vector GELU).
// The sums are converted with rows in lanes, transposed, and scaled and offset with outputs in
// lanes as each row is stored, so one tile's scales and offsets are loaded once for all rows.
// Accumulating tiles are staged in L1 and added to Y row by row.
template <class Ops>
inline void write_outputs(const ScanArgs& args, const uint32_t* sums, int64_t row0, int valid_rows,
                          int64_t m0, int count) {
  using Batch = xsimd::batch<float, typename Ops::XsimdArch>;
  using IntBatch = xsimd::batch<int32_t, typename Ops::XsimdArch>;
  using Floats = typename Ops::Floats;
  constexpr int kLanes = Ops::kLanes;
  static_assert(Batch::size == kLanes, "xsimd batch and Ops lanes disagree");
  for (int j = 0; j < count; j += kLanes) {
    const int cols_here = count - j < kLanes ? count - j : kLanes;
    Batch scale, offset;
    if (cols_here == kLanes) {
      scale = Batch::load_unaligned(args.scales + m0 + j);
      offset = Batch::load_unaligned(args.offsets + m0 + j);
    } else {  // the last tile: zeros past M
      alignas(64) float scale_lanes[kLanes] = {}, offset_lanes[kLanes] = {};
      for (int i = 0; i < cols_here; ++i) {
        scale_lanes[i] = args.scales[m0 + j + i];
        offset_lanes[i] = args.offsets[m0 + j + i];
      }
      scale = Batch::load_aligned(scale_lanes);
      offset = Batch::load_aligned(offset_lanes);
    }
    // Two roundings (multiply, then add), never fused, as the scalar reference.
    const auto finish = [&](Floats row) -> Floats { return Batch(row) * scale + offset; };
    for (int r = 0; r < valid_rows; r += kLanes) {
      const int rows_here = valid_rows - r < kLanes ? valid_rows - r : kLanes;
      Floats tile[kLanes];
      for (int i = 0; i < kLanes; ++i)
        // Sums are below 2^24, so the int32 conversion is exact.
        tile[i] = i < cols_here
                      ? Floats(xsimd::to_float(IntBatch::load_aligned(reinterpret_cast<const int32_t*>(sums + (j + i) * kBlockRows + r))))
                      : Floats(Batch(0.f));
      float* y = args.y + (row0 + r) * args.ldy + m0 + j;
      if (!args.accumulate && !args.gelu) {
        Ops::transpose_store(tile, y, args.ldy, rows_here, cols_here, finish);
        continue;
      }
      // The epilogue on a staged tile in L1, away from the transpose's registers.
      alignas(64) float staged[kLanes * kLanes];
      Ops::transpose_store(tile, staged, kLanes, rows_here, kLanes, finish);
      for (int i = 0; i < rows_here; ++i) {
        Batch v = Batch::load_aligned(staged + i * kLanes);
        if (args.gelu) v = vector_gelu<typename Ops::XsimdArch>(v);
        float* out = y + i * args.ldy;
        if (cols_here == kLanes) {
          if (args.accumulate) v = Batch::load_unaligned(out) + v;
          v.store_unaligned(out);
          continue;
        }
        v.store_aligned(staged + i * kLanes);
        for (int c = 0; c < cols_here; ++c) out[c] = args.accumulate ? out[c] + staged[i * kLanes + c] : staged[i * kLanes + c];
      }
    }
  }
}

template <class Ops>
void scan_blocks(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                 int64_t m_end) {
  constexpr int kTile = Ops::kOutputTile;
  constexpr int kParts = kBlockRows / Ops::kByteWidth;
  const int pairs_per_round = args.averaged ? 256 : 128;
  alignas(64) uint32_t sums[kChunkOutputs * kBlockRows];

  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint8_t* codes = args.packed + block * args.npairs * kBlockRows;
    const int64_t row0 = block * kBlockRows;
    const int valid_rows = args.rows - row0 < kBlockRows ? static_cast<int>(args.rows - row0) : kBlockRows;
    for (int64_t chunk = m_begin; chunk < m_end; chunk += kChunkOutputs) {
      const int count = m_end - chunk < kChunkOutputs ? static_cast<int>(m_end - chunk) : kChunkOutputs;
      for (int t = 0; t < count; t += kTile) {
        const int valid_outputs = count - t < kTile ? count - t : kTile;
        const uint8_t* tables[kTile];
        for (int i = 0; i < kTile; ++i) {
          const int64_t m = chunk + t + (i < valid_outputs ? i : valid_outputs - 1);
          tables[i] = args.tables + m * args.npairs * kPairBytes;
        }
        uint32_t* tile_sums = sums + t * kBlockRows;
        for (int part = 0; part < kParts; ++part) {
          for (int p = 0; p < args.npairs; p += pairs_per_round) {
            const int end = args.npairs - p < pairs_per_round ? args.npairs : p + pairs_per_round;
            if (args.averaged) {
              accumulate_tile<Ops, true>(codes, part, p, end, tables, valid_outputs, tile_sums);
            } else {
              accumulate_tile<Ops, false>(codes, part, p, end, tables, valid_outputs, tile_sums);
            }
          }
        }
      }
      write_outputs<Ops>(args, sums, row0, valid_rows, chunk, count);
    }
  }
}

}  // namespace
}  // namespace lutmul::kernels
