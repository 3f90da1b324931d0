// The encoder of 64-leaf trees, written once over xsimd batches and instantiated per ISA.
//
// Rows in lanes, one codebook at a time: each row walks its tree (node = 2·node +
// (x[dim_t] > threshold[t][node])) with the node's threshold gathered from the level's 32.
// Column-major A is read in place; any other block (row-major, or the partial last block)
// first has its split columns copied into a zero-padded column-major tile. The codes of a
// block are stored one byte per (row, codebook) at packed_byte_offset(c, r).
#pragma once

#include <xsimd/xsimd.hpp>

#include "kernels/cpu/maddness/maddness_kernels.h"

namespace lutmul::kernels {
namespace {

template <class Ops>
inline bool encode_wide_block(const EncodeArgs& args, const float* origin, int64_t col_stride,
                              const int32_t* columns, uint8_t* out) {
  using Floats = xsimd::batch<float, typename Ops::XsimdArch>;
  using Ints = xsimd::batch<int32_t, typename Ops::XsimdArch>;
  constexpr int kLanes = static_cast<int>(Floats::size);
  constexpr int kVectors = kBlockRows / kLanes;
  auto nan = Floats(0.f) != Floats(0.f);
  alignas(64) int32_t leaf[kBlockRows];
  for (int c = 0; c < args.ncodebooks; ++c) {
    Ints node[kVectors];
    for (int v = 0; v < kVectors; ++v) node[v] = Ints(0);
    for (int level = 0; level < kWideTreeDepth; ++level) {
      const float* thresholds = args.thresholds + (c * kWideTreeDepth + level) * kWideThresholdStride;
      const float* column = origin + int64_t{columns[c * kWideTreeDepth + level]} * col_stride;
      for (int v = 0; v < kVectors; ++v) {
        const Floats x = Floats::load_unaligned(column + v * kLanes);
        nan = nan || xsimd::isnan(x);
        const Floats above = xsimd::select(x > Floats::gather(thresholds, node[v]), Floats(1.f), Floats(0.f));
        node[v] = node[v] + node[v] + xsimd::to_int(above);
      }
    }
    for (int v = 0; v < kVectors; ++v) node[v].store_aligned(leaf + v * kLanes);
    for (int r = 0; r < kBlockRows; ++r) out[packed_byte_offset(c, r)] = static_cast<uint8_t>(leaf[r]);
  }
  return xsimd::any(nan);
}

template <class Ops>
bool encode_wide_blocks(const EncodeArgs& args, int64_t block_begin, int64_t block_end) {
  const int nsplits = args.ncodebooks * kWideTreeDepth;
  // Tile of the split columns (column s at tile + s·64), then the identity column map.
  float* tile = args.tail_scratch;
  int32_t* identity = reinterpret_cast<int32_t*>(tile + nsplits * kBlockRows);
  for (int s = 0; s < nsplits; ++s) identity[s] = s;
  bool saw_nan = false;
  for (int64_t block = block_begin; block < block_end; ++block) {
    const int64_t row0 = block * kBlockRows;
    uint8_t* out = args.packed + block * args.ncodebooks * kBlockRows;
    const int64_t left = args.rows - row0;
    if (left >= kBlockRows && args.row_stride == 1) {
      saw_nan |= encode_wide_block<Ops>(args, args.a + row0, args.col_stride, args.split_dims, out);
      continue;
    }
    const int valid = left < kBlockRows ? static_cast<int>(left) : kBlockRows;
    for (int s = 0; s < nsplits; ++s) {
      const float* column = args.a + row0 * args.row_stride + int64_t{args.split_dims[s]} * args.col_stride;
      for (int r = 0; r < kBlockRows; ++r) tile[s * kBlockRows + r] = r < valid ? column[r * args.row_stride] : 0.f;
    }
    saw_nan |= encode_wide_block<Ops>(args, tile, kBlockRows, identity, out);
    for (int c = 0; c < args.ncodebooks; ++c)  // padding rows get code 0, as the reference
      for (int r = valid; r < kBlockRows; ++r) out[packed_byte_offset(c, r)] = 0;
  }
  return saw_nan;
}

}  // namespace
}  // namespace lutmul::kernels
