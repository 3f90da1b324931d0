// The pruned product, rows of X in vector lanes, written once over an ISA's primitives
// (simd_*.h). A tile of up to kSparseTileVectors vectors of rows is transposed once
// (K × tile rows floats). The weights are stored in K-blocks of kSparseBlockK inputs, so the
// block's slice of the tile stays in cache while the weights of every output column in that
// block are applied: per kept weight one broadcast and one fused multiply-add per vector of
// rows. Partial sums are carried from block to block in a column buffer and transposed back
// into row-major Y at the end. Every output adds its weights in ascending k, as the scalar
// reference does.
//
// One output at a time over 64 rows (four AVX-512 accumulators) measured fastest on Zen 4:
// 0.83 ms at 90% sparsity, N = 256, K = M = 1024, against 1.23 ms for four outputs
// interleaved over 32 rows (whose per-column tails of varying length, and pointers for four
// columns, cost more than the interleaving hid) and 0.96 ms for two outputs over 64 rows.
// Include only from a file built for the ISA (pruned_<isa>.cpp).
#pragma once

#include <cstdint>

#include "kernels/cpu/pruned/row_tile_impl.h"
#include "kernels/cpu/pruned/sparse_kernels.h"

namespace lutmul::kernels {
namespace {

template <class Ops, int V>
struct SparseTile {
  static constexpr int kRows = Ops::kLanes * V;

  // Applies block `block`'s weights of every column to the partial sums (partial[m·kRows + r]).
  static void apply_block(const SparseArgs& args, const float* tile, int64_t block, float* partial) {
    const int64_t* start = args.segment_start + block * args.m;
    const float* slice = tile + block * kSparseBlockK * kRows;
    for (int64_t m = 0; m < args.m; ++m) {
      float* sums = partial + m * kRows;
      typename Ops::Floats acc[V];
      for (int v = 0; v < V; ++v) acc[v] = block == 0 ? Ops::zero_floats() : Ops::load_aligned(sums + Ops::kLanes * v);
      for (int64_t i = start[m]; i < start[m + 1]; ++i) {
        const float* x = slice + int64_t{args.offsets[i]} * kRows;
        const typename Ops::Floats w = Ops::broadcast(args.values[i]);
        for (int v = 0; v < V; ++v) acc[v] = Ops::multiply_add(Ops::load_aligned(x + Ops::kLanes * v), w, acc[v]);
      }
      for (int v = 0; v < V; ++v) Ops::store_aligned(sums + Ops::kLanes * v, acc[v]);
    }
  }

  // Y rows r0 .. r0 + rows (rows ≤ kRows). K ≥ 1, so there is at least one block and every
  // partial sum is written before it is read. The scratch is 64-byte aligned.
  static void run(const SparseArgs& args, int64_t r0, int rows) {
    float* tile = args.scratch;                      // K × kRows
    float* partial = args.scratch + args.k * kRows;  // M × kRows
    transpose_rows<Ops, kRows>(args.x, args.ldx, args.k, r0, rows, tile);
    for (int64_t block = 0; block < args.blocks; ++block) apply_block(args, tile, block, partial);
    store_column_sums<Ops, kRows>(partial, args.bias, args.m, args.y, args.ldy, r0, rows);
  }
};

template <class Ops>
void sparse_rows(const SparseArgs& args, int64_t row_begin, int64_t row_end) {
  static_assert(SparseTile<Ops, kSparseTileVectors>::kRows <= kSparseTileRows, "the scratch is sized for kSparseTileRows");
  run_rows_in_tiles<SparseTile, Ops, kSparseTileVectors>(args, row_begin, row_end);
}

}  // namespace
}  // namespace lutmul::kernels
