// The 2:4 product, rows of X in vector lanes, written once over an ISA's primitives
// (simd_*.h): a tile of up to kSparse24TileVectors vectors of rows is transposed once, then
// for each block of 64 inputs every output applies its two kept weights per group of four
// inputs as broadcast fused multiply-adds on the tile rows its 2-bit positions select. The
// selection is address arithmetic, so no shuffle competes with the FMAs. Partial sums are
// carried from block to block per output and moved into row-major Y at the end.
//
// One output at a time over 128 rows (eight AVX-512 accumulators) measured fastest on Zen 4:
// 3.2 ms at N = 256, K = M = 1024, against 3.4 ms for one output over 64 rows and 4.0 ms for
// four outputs interleaved over 64 rows (more pointers than registers). Blocks of 32 inputs
// (16 KB slices, well inside L1) ran slower than blocks of 64, and blocks of 128 slower still.
// Include only from a file built for the ISA (pruned_<isa>.cpp).
#pragma once

#include <cstdint>

#include "kernels/cpu/pruned/row_tile_impl.h"
#include "kernels/cpu/pruned/sparse24_kernels.h"

namespace lutmul::kernels {
namespace {

template <class Ops, int V>
struct Sparse24Tile {
  static constexpr int kRows = Ops::kLanes * V;

  static inline void add_weight(const float* x, float weight, typename Ops::Floats* acc) {
    const typename Ops::Floats w = Ops::broadcast(weight);
    for (int v = 0; v < V; ++v) acc[v] = Ops::multiply_add(Ops::load_aligned(x + Ops::kLanes * v), w, acc[v]);
  }

  static void apply_block(const Sparse24Args& args, const float* tile, int64_t block, float* partial) {
    const Sparse24Layout& layout = args.layout;
    const int64_t count = layout.count(block);
    const float* tile_block = tile + 4 * block * kSparse24BlockGroups * kRows;
    for (int64_t m = 0; m < layout.m; ++m) {
      float* sums = partial + m * kRows;
      typename Ops::Floats acc[V];
      for (int v = 0; v < V; ++v) acc[v] = block == 0 ? Ops::zero_floats() : Ops::load_aligned(sums + Ops::kLanes * v);
      const float* values = args.values + layout.value_offset(block, m);
      const uint8_t* codes = args.codes + layout.code_offset(block, m);
      for (int64_t g = 0; g < count; ++g) {
        const float* x = tile_block + 4 * g * kRows;
        const int code = sparse24_code(codes, g);
        add_weight(x + (code & 3) * kRows, values[2 * g], acc);
        add_weight(x + (code >> 2) * kRows, values[2 * g + 1], acc);
      }
      for (int v = 0; v < V; ++v) Ops::store_aligned(sums + Ops::kLanes * v, acc[v]);
    }
  }

  // Y rows r0 .. r0 + rows (rows ≤ kRows). K ≥ 4, so there is at least one block and every
  // partial sum is written before it is read. The scratch is 64-byte aligned.
  static void run(const Sparse24Args& args, int64_t r0, int rows) {
    const int64_t k = 4 * args.layout.groups;
    float* tile = args.scratch;                 // K × kRows
    float* partial = args.scratch + k * kRows;  // M × kRows
    transpose_rows<Ops, kRows>(args.x, args.ldx, k, r0, rows, tile);
    for (int64_t block = 0; block < args.layout.blocks(); ++block) apply_block(args, tile, block, partial);
    store_column_sums<Ops, kRows>(partial, args.bias, args.layout.m, args.y, args.ldy, r0, rows);
  }
};

// Full tiles, then the smallest tile that holds the rows left, so they do not pay for more.
template <class Ops>
void sparse24_rows(const Sparse24Args& args, int64_t row_begin, int64_t row_end) {
  static_assert(Sparse24Tile<Ops, kSparse24TileVectors>::kRows <= kSparse24TileRows,
                "the scratch is sized for kSparse24TileRows");
  run_rows_in_tiles<Sparse24Tile, Ops, kSparse24TileVectors>(args, row_begin, row_end);
}

}  // namespace
}  // namespace lutmul::kernels
