// The encoder, written once over an ISA's primitives (Ops) and instantiated per ISA.
//
// A block of 64 rows is encoded one codebook pair at a time: each row walks its codebook's
// tree (node = 2·node + (x[dim_t] > threshold[t][node])) with the threshold picked by a
// lane permute, 64 / Ops::kLanes independent chains per level. Column-major A is read with
// contiguous loads, anything else with strided gathers (a fused transpose). Float
// thresholds are compared directly: converting A to bytes would cost more than the compare.
#pragma once

#include <cstring>

#include "kernels/cpu/kernels.h"

namespace lutmul::kernels {
namespace {

template <class Ops>
inline void encode_full_block(const EncodeArgs& args, const float* block_origin,
                              uint8_t* out, typename Ops::NanFlag& nan) {
  using Floats = typename Ops::Floats;
  using Ints = typename Ops::Ints;
  constexpr int kVectors = kBlockRows / Ops::kLanes;
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
      for (int v = 0; v < kVectors; ++v) node[v] = Ops::zero_ints();
      for (int level = 0; level < kTreeDepth; ++level) {
        const typename Ops::Thresholds thresholds =
            Ops::load_thresholds(args.thresholds + (c * kTreeDepth + level) * kThresholdStride);
        const float* column = block_origin + args.split_dims[c * kTreeDepth + level] * args.col_stride;
        for (int v = 0; v < kVectors; ++v) {
          const Floats x = contiguous
                               ? Ops::load_floats(column + v * Ops::kLanes)
                               : Ops::gather_floats(column + v * Ops::kLanes * args.row_stride, gather_offsets);
          Ops::track_nan(nan, x);
          node[v] = Ops::descend(node[v], x, thresholds);
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

template <class Ops>
bool encode_blocks(const EncodeArgs& args, int64_t block_begin, int64_t block_end) {
  typename Ops::NanFlag nan = Ops::no_nan();
  const int npairs = (args.ncodebooks + 1) / 2;
  for (int64_t block = block_begin; block < block_end; ++block) {
    const int64_t row0 = block * kBlockRows;
    uint8_t* out = args.packed + block * npairs * kBlockRows;
    const int64_t left = args.rows - row0;
    if (left >= kBlockRows) {
      encode_full_block<Ops>(args, args.a + row0 * args.row_stride, out, nan);
    } else {
      encode_partial_block<Ops>(args, row0, static_cast<int>(left), out, nan);
    }
  }
  return Ops::any_nan(nan);
}

}  // namespace
}  // namespace lutmul::kernels
