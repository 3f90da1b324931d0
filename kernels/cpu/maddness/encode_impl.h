// The encoder, written once over an ISA's primitives (Ops) and instantiated per ISA.
//
// Column-major A: a block of 64 rows is encoded one codebook pair at a time, rows in
// lanes: each row walks its codebook's tree (node = 2·node + (x[dim_t] > threshold[t][node]))
// with the threshold picked by a lane permute, 64 / Ops::kLanes chains per level.
//
// Row-major A: codebooks in lanes, one row at a time. A gather reads the row's split
// column of level t for Ops::kLanes codebooks (all within the row's own cache lines, which
// are streamed once); each value is compared with all 2^t thresholds of its level at
// once, and the path is picked from the comparison bits with scalar bit selects. The
// row's 4-bit codes come out as one 64-bit word whose bytes are already the packed
// codebook-pair bytes.
//
// Float thresholds are compared directly: converting A to bytes would cost more than the
// compare.
#pragma once

#include <algorithm>
#include <cstring>

#include "kernels/cpu/maddness/maddness_kernels.h"

namespace lutmul::kernels {
namespace {

template <class Ops>
inline void encode_full_block(const EncodeArgs& args, const float* block_origin,
                              uint8_t* out, typename Ops::NanFlag& nan) {
  using Floats = typename Ops::Floats;
  using Ints = typename Ops::Ints;
  constexpr int kVectors = kBlockRows / Ops::kLanes;
  constexpr int kGroup = kVectors < 4 ? kVectors : 4;
  const bool contiguous = args.row_stride == 1;
  const Ints gather_offsets = Ops::row_offsets(args.row_stride);
  const int npairs = (args.ncodebooks + 1) / 2;

  for (int p = 0; p < npairs; ++p) {
    Ints codes[2][kVectors];
    for (int half = 0; half < 2; ++half) {
      const int c = 2 * p + half;
      if (c >= args.ncodebooks) {
        for (int v = 0; v < kVectors; ++v) codes[half][v] = Ops::zero_ints();
        continue;
      }
      Ints* node = codes[half];
      // A group of vectors walks all levels before the next group starts, so its nodes stay in
      // registers (AVX2's 16 would spill 8 nodes with the thresholds and the loads).
      for (int group = 0; group < kVectors; group += kGroup) {
        for (int v = group; v < group + kGroup; ++v) node[v] = Ops::zero_ints();
        for (int level = 0; level < kTreeDepth; ++level) {
          const typename Ops::Thresholds thresholds =
              Ops::load_thresholds(args.thresholds + (c * kTreeDepth + level) * kThresholdStride);
          const float* column = block_origin + args.split_dims[c * kTreeDepth + level] * args.col_stride;
          for (int v = group; v < group + kGroup; ++v) {
            const Floats x = contiguous
                                 ? Ops::load_floats(column + v * Ops::kLanes)
                                 : Ops::gather_floats(column + v * Ops::kLanes * args.row_stride, gather_offsets);
            Ops::track_nan(nan, x);
            node[v] = Ops::descend(node[v], x, thresholds);
          }
        }
      }
    }
    Ops::store_codes(codes[0], codes[1], out + p * kBlockRows);
  }
}

// A partial last block: copy its split columns into a zero-padded column-major tile
// (4 columns per codebook), encode that, then clear the padding rows' codes.
template <class Ops>
inline void encode_partial_block(const EncodeArgs& args, int64_t row0, int valid_rows,
                                 uint8_t* out, typename Ops::NanFlag& nan) {
  const int nsplits = args.ncodebooks * kTreeDepth;
  float* tile = args.tail_scratch;
  for (int s = 0; s < nsplits; ++s) {
    const float* column = args.a + row0 * args.row_stride + int64_t{args.split_dims[s]} * args.col_stride;
    for (int r = 0; r < kBlockRows; ++r) tile[s * kBlockRows + r] = r < valid_rows ? column[r * args.row_stride] : 0.f;
  }
  // Split s now lives in tile column s.
  int32_t* identity = reinterpret_cast<int32_t*>(tile + nsplits * kBlockRows);
  for (int s = 0; s < nsplits; ++s) identity[s] = s;
  EncodeArgs tile_args = args;
  tile_args.row_stride = 1;
  tile_args.col_stride = kBlockRows;
  tile_args.split_dims = identity;
  encode_full_block<Ops>(tile_args, tile, out, nan);
  const int npairs = (args.ncodebooks + 1) / 2;
  for (int p = 0; p < npairs; ++p)
    for (int r = valid_rows; r < kBlockRows; ++r) out[packed_byte_offset(p, r)] = 0;
}


// Per-call constants of the row-major encoder, one set per group of Ops::kLanes codebooks,
// laid out in the caller's scratch (kernels allocate nothing).
template <class Ops>
struct RowEncoderPlan {
  static constexpr int kNodes = 15;  // thresholds of levels 0..3
  static constexpr int kBitmapLines = 4096;  // rows of up to 64 Ki floats
  int groups = 0;
  int32_t* offsets = nullptr;  // groups × 4 × kLanes element offsets within a row
  float* thresholds = nullptr; // groups × 15 × kLanes
  int32_t* lines = nullptr;    // distinct touched cache lines (as element offsets), ascending
  int nlines = 0;

  RowEncoderPlan(const EncodeArgs& args, float* scratch) {
    constexpr int kLanes = Ops::kLanes;
    groups = (args.ncodebooks + kLanes - 1) / kLanes;
    thresholds = scratch;
    offsets = reinterpret_cast<int32_t*>(scratch + groups * kNodes * kLanes);
    lines = offsets + groups * kTreeDepth * kLanes;
    for (int g = 0; g < groups; ++g)
      for (int lane = 0; lane < kLanes; ++lane) {
        const int c = g * kLanes + lane < args.ncodebooks ? g * kLanes + lane : g * kLanes;
        for (int level = 0; level < kTreeDepth; ++level) {
          offsets[(g * kTreeDepth + level) * kLanes + lane] =
              static_cast<int32_t>(args.split_dims[c * kTreeDepth + level] * args.col_stride);
          for (int node = 0; node < (1 << level); ++node)
            thresholds[(g * kNodes + (1 << level) - 1 + node) * kLanes + lane] =
                args.thresholds[(c * kTreeDepth + level) * kThresholdStride + node];
        }
      }
    // The touched lines, ascending and each once. The plan is made per call, and a producer
    // (Maddness::matmul_produced) calls once per 64-row block: a bitmap of lines keeps it
    // linear (a pairwise search cost as much as encoding a third of the block).
    const int count = groups * kTreeDepth * kLanes;
    int32_t last_line = 0;
    for (int i = 0; i < count; ++i) last_line = offsets[i] / 16 > last_line ? offsets[i] / 16 : last_line;
    if (last_line < kBitmapLines) {
      uint64_t seen[kBitmapLines / 64] = {};
      for (int i = 0; i < count; ++i) seen[offsets[i] / 16 / 64] |= uint64_t{1} << (offsets[i] / 16 % 64);
      for (int w = 0; w <= last_line / 64; ++w)
        for (uint64_t bits = seen[w]; bits != 0; bits &= bits - 1)
          lines[nlines++] = (w * 64 + __builtin_ctzll(bits)) * 16;
    } else {  // rows of more than 64 Ki floats: sort, then keep one offset per line
      for (int i = 0; i < count; ++i) lines[i] = offsets[i] / 16 * 16;
      std::sort(lines, lines + count);
      nlines = static_cast<int>(std::unique(lines, lines + count) - lines);
    }
  }
};

constexpr int64_t kShortRow = 128;  // floats: a block of 64 such rows is 32 KiB

// A full block of short row-major rows: transposed into a column-major tile (all columns),
// then encoded like column-major A.
template <class Ops>
inline void encode_short_rows_block(const EncodeArgs& args, int64_t columns, int64_t row0, uint8_t* out,
                                    typename Ops::NanFlag& nan) {
  constexpr int kLanes = Ops::kLanes;
  const int64_t d = columns;        // the columns up to the last split column
  float* tile = args.tail_scratch;  // d × 64, column j at tile + j·64
  const float* a = args.a + row0 * args.row_stride;
  for (int r0 = 0; r0 < kBlockRows; r0 += kLanes) {
    int64_t j0 = 0;
    for (; j0 + kLanes <= d; j0 += kLanes) {
      typename Ops::Floats rows[kLanes];
      for (int i = 0; i < kLanes; ++i) rows[i] = Ops::load_floats(a + (r0 + i) * args.row_stride + j0);
      Ops::transpose_store(rows, tile + j0 * kBlockRows + r0, kBlockRows, kLanes, kLanes);
    }
    for (; j0 < d; ++j0)
      for (int i = 0; i < kLanes; ++i) tile[j0 * kBlockRows + r0 + i] = a[(r0 + i) * args.row_stride + j0];
  }
  EncodeArgs tile_args = args;
  tile_args.row_stride = 1;
  tile_args.col_stride = kBlockRows;
  encode_full_block<Ops>(tile_args, tile, out, nan);
}

// (b ? if_set : if_clear), bit by bit.
inline uint32_t select_bits(uint32_t b, uint32_t if_set, uint32_t if_clear) { return (if_set & b) | (if_clear & ~b); }

// Codes of one row for one group of codebooks: nibble `lane` is the code of codebook
// (group · kLanes + lane). Adds the lanes that read NaN to `nan_bits`.
template <class Ops>
inline uint64_t encode_row_group(const float* x, const int32_t* offsets, const float* thresholds, uint32_t lane_mask,
                                 uint32_t& nan_bits) {
  using Floats = typename Ops::Floats;
  constexpr int kLanes = Ops::kLanes;
  Floats x0, x1, x2, x3;
  if constexpr (Ops::kRowGathersAsScalarLoads) {
    // Zen 3's vgatherdps cost more than eight plain loads through L1 (docs/experiments.md).
    alignas(64) float values[4 * kLanes];
    for (int i = 0; i < 4 * kLanes; ++i) values[i] = x[offsets[i]];
    x0 = Ops::load_floats(values);
    x1 = Ops::load_floats(values + kLanes);
    x2 = Ops::load_floats(values + 2 * kLanes);
    x3 = Ops::load_floats(values + 3 * kLanes);
  } else {
    x0 = Ops::gather_floats(x, Ops::load_ints(offsets));
    x1 = Ops::gather_floats(x, Ops::load_ints(offsets + kLanes));
    x2 = Ops::gather_floats(x, Ops::load_ints(offsets + 2 * kLanes));
    x3 = Ops::gather_floats(x, Ops::load_ints(offsets + 3 * kLanes));
  }
  nan_bits |= (Ops::nan_mask(x0) | Ops::nan_mask(x1) | Ops::nan_mask(x2) | Ops::nan_mask(x3)) & lane_mask;
  if constexpr (Ops::kRowEncoderBlends) {
    // Each lane's threshold picked by blends on the comparisons so far, then one compare
    // per level (11 blends and 4 compares against 15 compares and scalar bit selects).
    const auto node = [&](int n) { return Ops::load_floats(thresholds + n * kLanes); };
    const Floats m0 = Ops::greater(x0, node(0));
    const Floats m1 = Ops::greater(x1, Ops::blend(m0, node(2), node(1)));
    const Floats m2 =
        Ops::greater(x2, Ops::blend(m0, Ops::blend(m1, node(6), node(5)), Ops::blend(m1, node(4), node(3))));
    const Floats low = Ops::blend(m1, Ops::blend(m2, node(10), node(9)), Ops::blend(m2, node(8), node(7)));
    const Floats high = Ops::blend(m1, Ops::blend(m2, node(14), node(13)), Ops::blend(m2, node(12), node(11)));
    const Floats m3 = Ops::greater(x3, Ops::blend(m0, high, low));
    const auto bits = [&](Floats mask) { return Ops::spread_to_nibbles(Ops::mask_bits(mask) & lane_mask); };
    return bits(m3) | bits(m2) << 1 | bits(m1) << 2 | bits(m0) << 3;
  }
  auto above = [&](Floats v, int node) { return Ops::greater_mask(v, Ops::load_floats(thresholds + node * kLanes)); };
  // Every threshold of a level is compared; the path then picks its bit.
  const uint32_t b0 = above(x0, 0);
  const uint32_t b1 = select_bits(b0, above(x1, 2), above(x1, 1));
  const uint32_t b2 = select_bits(b0, select_bits(b1, above(x2, 6), above(x2, 5)),
                                  select_bits(b1, above(x2, 4), above(x2, 3)));
  const uint32_t p0 = select_bits(b2, above(x3, 8), above(x3, 7));
  const uint32_t p1 = select_bits(b2, above(x3, 10), above(x3, 9));
  const uint32_t p2 = select_bits(b2, above(x3, 12), above(x3, 11));
  const uint32_t p3 = select_bits(b2, above(x3, 14), above(x3, 13));
  const uint32_t b3 = select_bits(b0, select_bits(b1, p3, p2), select_bits(b1, p1, p0));
  // code = 8·b0 + 4·b1 + 2·b2 + b3
  return Ops::spread_to_nibbles(b3 & lane_mask) | Ops::spread_to_nibbles(b2 & lane_mask) << 1 |
         Ops::spread_to_nibbles(b1 & lane_mask) << 2 | Ops::spread_to_nibbles(b0 & lane_mask) << 3;
}

template <class Ops>
inline uint32_t encode_rows_block(const EncodeArgs& args, const RowEncoderPlan<Ops>& plan, int64_t block,
                                  uint8_t* out) {
  constexpr int kLanes = Ops::kLanes;
  constexpr int kRowsAhead = 4;  // reads this scattered do not train the hardware prefetchers
  uint32_t nan_bits = 0;
  for (int r = 0; r < kBlockRows; ++r) {
    const int64_t row = block * kBlockRows + r;
    if (!args.rows_in_cache && row + kRowsAhead < args.rows) {
      const float* ahead = args.a + (row + kRowsAhead) * args.row_stride;
      _Pragma("GCC unroll 4") for (int i = 0; i < plan.nlines; ++i) __builtin_prefetch(ahead + plan.lines[i]);
    }
    uint8_t* dst = out + 2 * (r & 31) + (r >> 5);
    for (int g = 0; g < plan.groups; ++g) {
      const int first = g * kLanes;
      const int lanes = args.ncodebooks - first < kLanes ? args.ncodebooks - first : kLanes;
      uint64_t codes = 0;
      if (row < args.rows) {
        const uint32_t lane_mask = lanes == 32 ? ~0u : (1u << lanes) - 1u;
        codes = encode_row_group<Ops>(args.a + row * args.row_stride, plan.offsets + g * kTreeDepth * kLanes,
                                      plan.thresholds + g * RowEncoderPlan<Ops>::kNodes * kLanes, lane_mask, nan_bits);
      }
      // The word's bytes are the packed pair bytes of pairs first/2 ...
      for (int q = 0; q < (lanes + 1) / 2; ++q) dst[(first / 2 + q) * kBlockRows] = static_cast<uint8_t>(codes >> (8 * q));
    }
  }
  return nan_bits;
}

template <class Ops>
bool encode_blocks(const EncodeArgs& args, int64_t block_begin, int64_t block_end) {
  typename Ops::NanFlag nan = Ops::no_nan();
  const int npairs = (args.ncodebooks + 1) / 2;
  // Row-major A with long rows: codebooks in lanes, rows streamed line by line. Short rows
  // (at most kShortRow floats) are transposed a block at a time instead, which costs less
  // than the gathers.
  if (args.row_stride != 1 && !(args.col_stride == 1 && args.row_stride <= kShortRow)) {
    const RowEncoderPlan<Ops> plan(args, args.tail_scratch);
    uint32_t nan_bits = 0;
    for (int64_t block = block_begin; block < block_end; ++block)
      nan_bits |= encode_rows_block<Ops>(args, plan, block, args.packed + block * npairs * kBlockRows);
    return nan_bits != 0;
  }
  int64_t columns = 0;  // the short-row path copies columns [0, last split column]
  for (int i = 0; i < args.ncodebooks * kTreeDepth; ++i)
    columns = args.split_dims[i] + 1 > columns ? args.split_dims[i] + 1 : columns;
  for (int64_t block = block_begin; block < block_end; ++block) {
    const int64_t row0 = block * kBlockRows;
    uint8_t* out = args.packed + block * npairs * kBlockRows;
    const int64_t left = args.rows - row0;
    if (left >= kBlockRows && args.row_stride != 1) {
      encode_short_rows_block<Ops>(args, columns, row0, out, nan);
    } else if (left >= kBlockRows) {
      encode_full_block<Ops>(args, args.a + row0 * args.row_stride, out, nan);
    } else {
      encode_partial_block<Ops>(args, row0, static_cast<int>(left), out, nan);
    }
  }
  return Ops::any_nan(nan);
}

}  // namespace
}  // namespace lutmul::kernels
