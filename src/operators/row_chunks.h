// Internal: how the operators whose kernels transpose tiles of rows (the pruned products)
// split a batch among threads.
#pragma once

#include <algorithm>
#include <cstdint>

namespace lutmul::detail {

// Rows per chunk for kernels that work best on tiles of `tile_rows` rows: whole tiles, unless
// that would leave threads idle (100 rows on two threads), then the batch's share per thread
// rounded up to 16, the vector width of the tiles.
inline int64_t rows_per_chunk(int64_t rows, int threads, int64_t tile_rows) {
  const int64_t share = (rows + threads - 1) / std::max(threads, 1);
  return std::clamp<int64_t>((share + 15) / 16 * 16, 16, tile_rows);
}

}  // namespace lutmul::detail
