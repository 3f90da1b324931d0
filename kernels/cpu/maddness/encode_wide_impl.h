// The encoder of 64-leaf trees, written once over an ISA's primitives (Ops) and instantiated
// per ISA.
//
// Rows in lanes, one codebook at a time: each row walks its tree (node = 2·node +
// (x[dim_t] > threshold[t][node])) with the node's threshold picked from the level's (at
// most 32) by a permute over registers (Ops::descend_wide). Column-major A is read in
// place; any other block (row-major, or the partial last block) first has its split columns
// copied into a zero-padded column-major tile. Codes are stored one byte per (row, codebook)
// at packed_byte_offset(c, r).
#pragma once

#include "kernels/cpu/maddness/maddness_kernels.h"

namespace lutmul::kernels {
namespace {

// Levels kLevel.. of one codebook's trees for the block's rows (node: 64 / kLanes vectors).
template <class Ops, int kLevel>
inline void descend_wide_levels(const EncodeArgs& args, const float* origin, int64_t col_stride, const int32_t* columns,
                                int c, typename Ops::Ints* node, typename Ops::NanFlag& nan) {
  if constexpr (kLevel < kWideTreeDepth) {
    constexpr int kLanes = Ops::kLanes;
    const typename Ops::WideThresholds thresholds =
        Ops::load_wide_thresholds(args.thresholds + (c * kWideTreeDepth + kLevel) * kWideThresholdStride);
    const float* column = origin + int64_t{columns[c * kWideTreeDepth + kLevel]} * col_stride;
    for (int v = 0; v < kBlockRows / kLanes; ++v) {
      const typename Ops::Floats x = Ops::load_floats(column + v * kLanes);
      Ops::track_nan(nan, x);
      node[v] = Ops::template descend_wide<kLevel>(node[v], x, thresholds);
    }
    descend_wide_levels<Ops, kLevel + 1>(args, origin, col_stride, columns, c, node, nan);
  }
}

template <class Ops>
inline void encode_wide_block(const EncodeArgs& args, const float* origin, int64_t col_stride, const int32_t* columns,
                              uint8_t* out, typename Ops::NanFlag& nan) {
  using Ints = typename Ops::Ints;
  constexpr int kLanes = Ops::kLanes;
  constexpr int kVectors = kBlockRows / kLanes;
  for (int c = 0; c < args.ncodebooks; ++c) {
    Ints node[kVectors];
    for (int v = 0; v < kVectors; ++v) node[v] = Ops::zero_ints();
    descend_wide_levels<Ops, 0>(args, origin, col_stride, columns, c, node, nan);
    Ops::store_wide_codes(node, out + c * kBlockRows);
  }
}

template <class Ops>
bool encode_wide_blocks(const EncodeArgs& args, int64_t block_begin, int64_t block_end) {
  typename Ops::NanFlag nan = Ops::no_nan();
  const int nsplits = args.ncodebooks * kWideTreeDepth;
  // Tile of the split columns (column s at tile + s·64), then the identity column map.
  float* tile = args.tail_scratch;
  int32_t* identity = reinterpret_cast<int32_t*>(tile + nsplits * kBlockRows);
  for (int s = 0; s < nsplits; ++s) identity[s] = s;
  for (int64_t block = block_begin; block < block_end; ++block) {
    const int64_t row0 = block * kBlockRows;
    uint8_t* out = args.packed + block * args.ncodebooks * kBlockRows;
    const int64_t left = args.rows - row0;
    if (left >= kBlockRows && args.row_stride == 1) {
      encode_wide_block<Ops>(args, args.a + row0, args.col_stride, args.split_dims, out, nan);
      continue;
    }
    const int valid = left < kBlockRows ? static_cast<int>(left) : kBlockRows;
    for (int s = 0; s < nsplits; ++s) {
      const float* column = args.a + row0 * args.row_stride + int64_t{args.split_dims[s]} * args.col_stride;
      for (int r = 0; r < kBlockRows; ++r) tile[s * kBlockRows + r] = r < valid ? column[r * args.row_stride] : 0.f;
    }
    encode_wide_block<Ops>(args, tile, kBlockRows, identity, out, nan);
    for (int c = 0; c < args.ncodebooks; ++c)  // padding rows get code 0, as the reference
      for (int r = valid; r < kBlockRows; ++r) out[packed_byte_offset(c, r)] = 0;
  }
  return Ops::any_nan(nan);
}

}  // namespace
}  // namespace lutmul::kernels
