// The scan, written once over an ISA's primitives (Ops) and instantiated per ISA.
//
// For one block of 64 rows, a tile of Ops::kOutputTile outputs at a time: each codebook
// pair's codes (64 bytes) are split into nibbles once and looked up in every output's two
// 16-entry tables (vpshufb / tbl). Sums are exact 16-bit words: a word holds row w in its
// low byte and row 32 + w in its high byte, so adding whole words and, separately, the
// high bytes gives both rows' sums (low = words − high·256) without unpacking. Rounds of
// at most 128 pairs (256 when averaging) keep every sum below 2^16. The block's integer
// sums for up to 64 outputs stay in L1 (as 16-bit words when one round covers all pairs,
// else 32-bit), then are scaled to float and transposed into the row-major output, through
// the epilogue (GELU, accumulation into Y) as they are stored. A short last tile of outputs
// runs at half width.
#pragma once

#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "kernels/cpu/isa/kernel_inline.h"
#include "kernels/cpu/maddness/maddness_kernels.h"
#include "kernels/cpu/runtime/vector_math.h"

namespace lutmul::kernels {
namespace {

constexpr int kChunkOutputs = 64;  // outputs whose block sums are kept at once (16 KiB)

// Stores (first round) or adds a tile's 16-bit sums as 32-bit row sums: words hold row w
// (low byte) + 256 · row 32 + w, high the sums of the high bytes, so low = words − high·256.
template <class Ops, int kTile>
inline void store_word_sums(typename Ops::Bytes* words, typename Ops::Bytes* high, int valid_outputs, bool first_round,
                            int part, uint32_t* sums) {
  const int row_offset = part * (Ops::kByteWidth / 2);
  // Constant trip count (and a break) keeps the accumulators in registers.
  for (int i = 0; i < kTile; ++i) {
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

// One round covers every pair (the usual case: C <= 256 exact, 512 averaged), so each sum
// fits 16 bits: stores a tile's sums as 16-bit words in row order, no widening here.
template <class Ops, int kTile>
inline void store_narrow_sums(typename Ops::Bytes* words, typename Ops::Bytes* high, int valid_outputs, int part,
                              uint16_t* sums) {
  using Bytes = xsimd::batch<uint8_t, typename Ops::XsimdArch>;
  const int row_offset = part * (Ops::kByteWidth / 2);
  for (int i = 0; i < kTile; ++i) {
    if (i >= valid_outputs) break;
    uint16_t* out = sums + i * kBlockRows;
    Bytes(Ops::sub_u16(words[i], Ops::shift_left_8_u16(high[i]))).store_aligned(reinterpret_cast<uint8_t*>(out + row_offset));
    Bytes(high[i]).store_aligned(reinterpret_cast<uint8_t*>(out + 32 + row_offset));
  }
}

// kTile outputs (Ops::kOutputTile, or half of it for a short last tile) over pairs
// [pair_begin, pair_end) of one part of a block.
template <class Ops, int kTile, bool kAveraged, bool kNarrow>
inline void accumulate_tile(const uint8_t* codes, int part, int pair_begin, int pair_end,
                            const uint8_t* const* tables, int valid_outputs, void* sums) {
  using Bytes = typename Ops::Bytes;
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

  if constexpr (kNarrow) {
    store_narrow_sums<Ops, kTile>(words, high, valid_outputs, part, static_cast<uint16_t*>(sums));
  } else {
    store_word_sums<Ops, kTile>(words, high, valid_outputs, pair_begin == 0, part, static_cast<uint32_t*>(sums));
  }
}

// The bfloat16 bits of finished values, rounded to nearest even as round_to_bf16_bits does, in
// the low halves of 32-bit lanes. kMayBeNan: a NaN kept and made quiet, a case that finite scales
// and offsets rule out before an epilogue (float(S)·scale + offset is then finite or infinite).
template <class Ops, bool kMayBeNan>
inline typename Ops::Ints bf16_bits(typename Ops::Floats row) {
  using Arch = typename Ops::XsimdArch;
  using Batch = xsimd::batch<float, Arch>;
  using Words = xsimd::batch<uint32_t, Arch>;
  const Batch v(row);
  const Words b = xsimd::bitwise_cast<Words>(v);
  const Words rounded = (b + Words(0x7fffu) + ((b >> 16) & Words(1u))) >> 16;
  if constexpr (!kMayBeNan) return typename Ops::Ints(rounded);
  const Words quiet_nan = (b >> 16) | Words(0x40u);
  // Picked by a float compare: AVX2 has no unsigned one.
  return typename Ops::Ints(xsimd::bitwise_cast<Words>(
      xsimd::select(v != v, xsimd::bitwise_cast<Batch>(quiet_nan), xsimd::bitwise_cast<Batch>(rounded))));
}

// The epilogue (GELU, accumulation into Y) on a tile staged in L1, away from the transpose's
// registers; float or bfloat16 Y.
template <class Ops, class Finish>
void store_tile_through_epilogue(const ScanArgs& args, const typename Ops::Floats* tile, int64_t at,
                                 int64_t row_stride, int rows_here, int cols_here, const Finish& finish) {
  using Batch = xsimd::batch<float, typename Ops::XsimdArch>;
  constexpr int kLanes = Ops::kLanes;
  alignas(64) float staged[kLanes * kLanes];
  Ops::transpose_store(tile, staged, kLanes, rows_here, kLanes, finish);
  for (int i = 0; i < rows_here; ++i) {
    Batch v = Batch::load_aligned(staged + i * kLanes);
    if (args.gelu) v = vector_gelu<typename Ops::XsimdArch>(v);
    const int64_t row_at = at + i * row_stride;
    if (args.output == ScanOutput::bf16) {
      if (args.accumulate) {
        alignas(64) float old[kLanes] = {};
        for (int c = 0; c < cols_here; ++c) old[c] = bf16_bits_to_float(args.y16[row_at + c]);
        v = Batch::load_aligned(old) + v;
      }
      Ops::store_u16_prefix(args.y16 + row_at, bf16_bits<Ops, true>(v), cols_here);
      continue;
    }
    float* out = args.y + row_at;
    if (cols_here == kLanes) {
      if (args.accumulate) v = Batch::load_unaligned(out) + v;
      v.store_unaligned(out);
      continue;
    }
    v.store_aligned(staged + i * kLanes);
    for (int c = 0; c < cols_here; ++c) out[c] = args.accumulate ? out[c] + staged[i * kLanes + c] : staged[i * kLanes + c];
  }
}

// Stores a tile: tile[i] holds output i for up to kLanes rows, lane k being the row at element
// at + k·row_stride of Y. kOutput f32 and bf16: the integer sums as float, which `finish` scales
// and offsets (nan_free: finite scales and offsets); sums: the sums' own 32-bit patterns, moved
// by the transpose unchanged.
template <class Ops, ScanOutput kOutput, class Finish>
inline void store_tile(const ScanArgs& args, const typename Ops::Floats* tile, int64_t at, int64_t row_stride,
                       int rows_here, int cols_here, const Finish& finish, bool nan_free) {
  using Floats = typename Ops::Floats;
  using Batch = xsimd::batch<float, typename Ops::XsimdArch>;
  using Words = xsimd::batch<uint32_t, typename Ops::XsimdArch>;
  if constexpr (kOutput == ScanOutput::sums) {
    Ops::transpose_rows(tile, rows_here, [&](int j, Floats row) {
      const typename Ops::Ints bits(xsimd::bitwise_cast<Words>(Batch(row)));
      Ops::store_u16_prefix(args.y16 + at + j * row_stride, bits, cols_here);
    });
  } else if (args.accumulate || args.gelu) {
    store_tile_through_epilogue<Ops>(args, tile, at, row_stride, rows_here, cols_here, finish);
  } else if constexpr (kOutput == ScanOutput::f32) {
    Ops::transpose_store(tile, args.y + at, row_stride, rows_here, cols_here, finish);
  } else if (nan_free) {
    Ops::transpose_rows(tile, rows_here, [&](int j, Floats row) {
      Ops::store_u16_prefix(args.y16 + at + j * row_stride, bf16_bits<Ops, false>(finish(row)), cols_here);
    });
  } else {
    Ops::transpose_rows(tile, rows_here, [&](int j, Floats row) {
      Ops::store_u16_prefix(args.y16 + at + j * row_stride, bf16_bits<Ops, true>(finish(row)), cols_here);
    });
  }
}

// Integer sums (below 2^24, so exactly convertible) as a tile's floats, or their bits for
// ScanOutput::sums.
template <class Ops, ScanOutput kOutput>
inline typename Ops::Floats tile_value(xsimd::batch<int32_t, typename Ops::XsimdArch> sums) {
  if constexpr (kOutput == ScanOutput::sums) {
    return typename Ops::Floats(xsimd::bitwise_cast<xsimd::batch<float, typename Ops::XsimdArch>>(sums));
  } else {
    return typename Ops::Floats(xsimd::to_float(sums));
  }
}

// The scales and offsets of outputs [m0, m0 + cols), cols <= kLanes, in lanes (zeros past
// cols; ones and zeros for ScanOutput::sums), applied to a transposed row as store_tile's
// `finish`.
template <class Ops, ScanOutput kOutput>
struct OutputColumns {
  using Batch = xsimd::batch<float, typename Ops::XsimdArch>;
  static constexpr int kLanes = Ops::kLanes;
  static_assert(Batch::size == kLanes, "xsimd batch and Ops lanes disagree");
  Batch scale = Batch(1.f), offset = Batch(0.f);
  bool nan_free = true;  // finite scales and offsets

  OutputColumns(const ScanArgs& args, int64_t m0, int cols) {
    if (kOutput != ScanOutput::sums && cols == kLanes) {
      scale = Batch::load_unaligned(args.scales + m0);
      offset = Batch::load_unaligned(args.offsets + m0);
    } else if (kOutput != ScanOutput::sums) {
      alignas(64) float scale_lanes[kLanes] = {}, offset_lanes[kLanes] = {};
      for (int i = 0; i < cols; ++i) {
        scale_lanes[i] = args.scales[m0 + i];
        offset_lanes[i] = args.offsets[m0 + i];
      }
      scale = Batch::load_aligned(scale_lanes);
      offset = Batch::load_aligned(offset_lanes);
    }
    nan_free = xsimd::all(xsimd::isfinite(scale) && xsimd::isfinite(offset));
  }
  // Two roundings (multiply, then add), never fused, as the scalar reference.
  typename Ops::Floats operator()(typename Ops::Floats row) const { return Batch(row) * scale + offset; }
};

// Stores a tile of integer sums held in registers, sums_of(i) giving output i's for up to
// kLanes rows (i < kOut, the tile's width), at `at` of dest (rows_here rows, cols outputs):
// plain float Y straight through the transpose, any other output or epilogue by store_tile.
template <class Ops, ScanOutput kOutput, int kOut, class SumsOf>
LUTMUL_KERNEL_INLINE void store_register_tile(const ScanArgs& dest, SumsOf sums_of, int64_t at, int rows_here, int cols,
                                              const OutputColumns<Ops, kOutput>& finish) {
  using IntBatch = xsimd::batch<int32_t, typename Ops::XsimdArch>;
  using Floats = typename Ops::Floats;
  Floats tile[Ops::kLanes];
  for (int i = 0; i < Ops::kLanes; ++i)
    tile[i] = i < kOut && i < cols ? tile_value<Ops, kOutput>(IntBatch(sums_of(i < kOut ? i : 0)))
                                   : Floats(xsimd::batch<float, typename Ops::XsimdArch>(0.f));
  if (kOutput == ScanOutput::f32 && !dest.accumulate && !dest.gelu) {
    Ops::transpose_store(tile, dest.y + at, dest.ldy, rows_here, cols, finish);
  } else {
    store_tile<Ops, kOutput>(dest, tile, at, dest.ldy, rows_here, cols, finish, finish.nan_free);
  }
}

// Calls visit(std::integral_constant<int, W>{}) for W = cols (1 .. 16) rounded up to even: a
// tile of outputs summed in registers does at most one output's lookups more than it needs
// (the 64-leaf scan at M = 10 in tiles of 12 took 1.15x the time of tiles of 10 on Sapphire
// Rapids).
template <class Visit>
inline void with_even_width(int cols, Visit visit) {
  switch ((cols + 1) / 2) {
    case 1: return visit(std::integral_constant<int, 2>{});
    case 2: return visit(std::integral_constant<int, 4>{});
    case 3: return visit(std::integral_constant<int, 6>{});
    case 4: return visit(std::integral_constant<int, 8>{});
    case 5: return visit(std::integral_constant<int, 10>{});
    case 6: return visit(std::integral_constant<int, 12>{});
    case 7: return visit(std::integral_constant<int, 14>{});
    default: return visit(std::integral_constant<int, 16>{});
  }
}

// y[row][m] = float(sum) * scales[m] + offsets[m] for the block's valid rows and `count` outputs,
// then the epilogue and the output type (finish_output in maddness_kernels.h; GELU by the
// runtime's vector GELU).
// The sums are converted with rows in lanes, transposed, and scaled and offset with outputs in
// lanes as each row is stored, so one tile's scales and offsets are loaded once for all rows.
// Narrow (16-bit) sums: a 32-bit lane holds rows 2k and 2k + 1, so one load and a mask or a
// shift give the even and the odd rows of 2·kLanes rows, each tile stored with stride 2·ldy;
// no widening shuffles (AVX2's vpmovzxwd runs one per cycle on Zen 3). ScanOutput::sums skips
// the float conversion: the transpose moves the integers' bits.
template <class Ops, bool kNarrow, ScanOutput kOutput>
inline void write_outputs_as(const ScanArgs& args, const void* sums, int64_t row0, int valid_rows, int64_t m0,
                             int count) {
  using Arch = typename Ops::XsimdArch;
  using Batch = xsimd::batch<float, Arch>;
  using IntBatch = xsimd::batch<int32_t, Arch>;
  using WordPairs = xsimd::batch<uint32_t, Arch>;
  using Floats = typename Ops::Floats;
  constexpr int kLanes = Ops::kLanes;
  const auto as_tile_value = [](IntBatch sums_here) { return tile_value<Ops, kOutput>(sums_here); };
  for (int j = 0; j < count; j += kLanes) {
    const int cols_here = count - j < kLanes ? count - j : kLanes;
    const OutputColumns<Ops, kOutput> finish(args, m0 + j, cols_here);
    const bool nan_free = finish.nan_free;
    if constexpr (kNarrow) {
      const uint16_t* narrow = static_cast<const uint16_t*>(sums);
      for (int r = 0; r < valid_rows; r += 2 * kLanes) {
        const int rows_here = valid_rows - r < 2 * kLanes ? valid_rows - r : 2 * kLanes;
        const int64_t at = (row0 + r) * args.ldy + m0 + j;
        // Even rows, then odd: one tile in registers at a time (the loads are L1 hits).
        for (int odd = 0; odd < 2 && odd < rows_here; ++odd) {
          const auto row_sums = [&](int i) {
            const WordPairs pairs = WordPairs::load_aligned(reinterpret_cast<const uint32_t*>(narrow + (j + i) * kBlockRows + r));
            return as_tile_value(xsimd::bitwise_cast<IntBatch>(odd ? pairs >> 16 : pairs & WordPairs(0xFFFFu)));
          };
          Floats tile[kLanes];
          if (cols_here == kLanes) {
            for (int i = 0; i < kLanes; ++i) tile[i] = row_sums(i);
          } else {
            for (int i = 0; i < kLanes; ++i) tile[i] = i < cols_here ? row_sums(i) : Floats(Batch(0.f));
          }
          store_tile<Ops, kOutput>(args, tile, at + odd * args.ldy, 2 * args.ldy, (rows_here + 1 - odd) / 2, cols_here,
                                   finish, nan_free);
        }
      }
    } else {
      const uint32_t* wide = static_cast<const uint32_t*>(sums);
      for (int r = 0; r < valid_rows; r += kLanes) {
        const int rows_here = valid_rows - r < kLanes ? valid_rows - r : kLanes;
        Floats tile[kLanes];
        for (int i = 0; i < kLanes; ++i)
          tile[i] = i < cols_here ? as_tile_value(IntBatch::load_aligned(reinterpret_cast<const int32_t*>(wide + (j + i) * kBlockRows + r)))
                                  : Floats(Batch(0.f));
        store_tile<Ops, kOutput>(args, tile, (row0 + r) * args.ldy + m0 + j, args.ldy, rows_here, cols_here, finish,
                                 nan_free);
      }
    }
  }
}

template <class Ops, bool kNarrow>
inline void write_outputs(const ScanArgs& args, const void* sums, int64_t row0, int valid_rows, int64_t m0,
                          int count) {
  switch (args.output) {
    case ScanOutput::f32:
      return write_outputs_as<Ops, kNarrow, ScanOutput::f32>(args, sums, row0, valid_rows, m0, count);
    case ScanOutput::bf16:
      return write_outputs_as<Ops, kNarrow, ScanOutput::bf16>(args, sums, row0, valid_rows, m0, count);
    case ScanOutput::sums:
      return write_outputs_as<Ops, kNarrow, ScanOutput::sums>(args, sums, row0, valid_rows, m0, count);
  }
}

// Writes a block's outputs chunk by chunk (write, then end_block): straight into Y, or, with
// ScanArgs::stream_y, into a staging block in L1 copied out with non-temporal stores, so Y's
// lines are written without first being read (a plain store to a line not in cache reads it).
// Only where the block's rows are one contiguous span (ldy = M, at most kStagedOutputs
// outputs), which the copy writes in whole lines; any other Y gets plain stores. Streaming
// rows a chunk at a time measured mixed on Zen 3: 0.92-0.93x the time at M = 100 (ldy = 112)
// and M = 1024, 1.8x at M = 300 (ldy = 304).
template <class Ops, bool kNarrow>
class BlockWriter {
 public:
  static constexpr int kStagedOutputs = 2 * kChunkOutputs;

  BlockWriter(const ScanArgs& args, int64_t m_begin, int64_t m_end)
      : args_(args),
        m_begin_(m_begin),
        width_(m_end - m_begin),
        streaming_(args.stream_y && args.output == ScanOutput::f32 && !args.accumulate && width_ <= kStagedOutputs &&
                   args.ldy == width_) {
    if (!streaming_) return;
    staged_ = args;  // staged at row 0 and column chunk − m_begin; scales still by output
    staged_.y = staging_;
    staged_.ldy = width_;
    staged_.scales = args.scales + m_begin;
    staged_.offsets = args.offsets + m_begin;
  }
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;
  ~BlockWriter() {
    if (streaming_) Ops::stream_fence();
  }

  // Outputs [chunk, chunk + count) of the block at row0 from its sums.
  void write(const void* sums, int64_t row0, int valid_rows, int64_t chunk, int count) {
    write_outputs<Ops, kNarrow>(target(), sums, target_row(row0), valid_rows, target_output(chunk), count);
  }
  // Where a caller writing its own tiles puts output m of row row0: Y itself, or the
  // staging block (rows from 0, outputs from m_begin, scales and offsets offset to match).
  const ScanArgs& target() const { return streaming_ ? staged_ : args_; }
  int64_t target_row(int64_t row0) const { return streaming_ ? 0 : row0; }
  int64_t target_output(int64_t m) const { return streaming_ ? m - m_begin_ : m; }

  // The block's rows, one span of valid_rows · M floats: plain stores up to the first
  // vector-aligned element and after the last whole vector, non-temporal ones between.
  void end_block(int64_t row0, int valid_rows) {
    if (!streaming_) return;
    float* dst = args_.y + row0 * args_.ldy + m_begin_;
    const int64_t n = int64_t{valid_rows} * width_;
    constexpr uintptr_t kAlign = sizeof(float) * Ops::kLanes;
    int64_t i = 0;
    for (; i < n && reinterpret_cast<uintptr_t>(dst + i) % kAlign != 0; ++i) dst[i] = staging_[i];
    for (; i + Ops::kLanes <= n; i += Ops::kLanes) Ops::stream_floats(dst + i, Ops::load_floats(staging_ + i));
    for (; i < n; ++i) dst[i] = staging_[i];
  }

 private:
  const ScanArgs& args_;
  const int64_t m_begin_, width_;
  const bool streaming_;
  ScanArgs staged_;
  alignas(64) float staging_[kBlockRows * kStagedOutputs];
};

template <class Ops, bool kAveraged, bool kNarrow>
void scan_blocks_in_mode(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                         int64_t m_end) {
  constexpr int kTile = Ops::kOutputTile;
  constexpr int kHalfTile = kTile / 2 > 0 ? kTile / 2 : 1;
  constexpr int kParts = kBlockRows / Ops::kByteWidth;
  constexpr int kPairsPerRound = kAveraged ? 256 : 128;
  alignas(64) uint32_t sums[kChunkOutputs * kBlockRows];  // 16-bit sums take the first half
  BlockWriter<Ops, kNarrow> writer(args, m_begin, m_end);

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
        void* tile_sums = kNarrow ? static_cast<void*>(reinterpret_cast<uint16_t*>(sums) + t * kBlockRows)
                                  : static_cast<void*>(sums + t * kBlockRows);
        for (int part = 0; part < kParts; ++part) {
          for (int p = 0; p < args.npairs; p += kPairsPerRound) {
            const int end = args.npairs - p < kPairsPerRound ? args.npairs : p + kPairsPerRound;
            if (valid_outputs > kHalfTile) {
              accumulate_tile<Ops, kTile, kAveraged, kNarrow>(codes, part, p, end, tables, valid_outputs, tile_sums);
            } else {  // a short last tile (M = 10 in tiles of 4: 4, 4, 2) does half the lookups
              accumulate_tile<Ops, kHalfTile, kAveraged, kNarrow>(codes, part, p, end, tables, valid_outputs, tile_sums);
            }
          }
        }
      }
      writer.write(sums, row0, valid_rows, chunk, count);
    }
    writer.end_block(row0, valid_rows);
  }
}

template <class Ops>
void scan_blocks(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin, int64_t m_end) {
  // Narrow sums when one round of pairs covers the codebooks: every sum then fits 16 bits.
  if (args.averaged) {
    if (args.npairs <= 256) {
      scan_blocks_in_mode<Ops, true, true>(args, block_begin, block_end, m_begin, m_end);
    } else {
      scan_blocks_in_mode<Ops, true, false>(args, block_begin, block_end, m_begin, m_end);
    }
  } else if (args.npairs <= 128) {
    scan_blocks_in_mode<Ops, false, true>(args, block_begin, block_end, m_begin, m_end);
  } else {
    scan_blocks_in_mode<Ops, false, false>(args, block_begin, block_end, m_begin, m_end);
  }
}

}  // namespace
}  // namespace lutmul::kernels
