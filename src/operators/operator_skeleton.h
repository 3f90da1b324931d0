// Internal: the glue every operator shares, written once. Constructors check their weights
// and copy their bias through here; forwards take contiguous rows, split work among threads
// and apply the one finite-values rule of the contract
// (include/lutmul/operators/linear_operator.h) through here.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/aligned_scratch.h"
#include "core/file_format.h"
#include "core/finite.h"
#include "lutmul/core/matrix.h"
#include "lutmul/core/threading.h"

namespace lutmul::detail {

// W given to a constructor: a well-formed, non-empty view with finite values. `who` names
// the operator in the message.
void check_weights(const MatrixView& W, const char* who);

// Calibration rows for a layer with K inputs: N × K, N ≥ 1, finite.
void check_calibration(const MatrixView& calibration, int64_t k, const char* who);

// The bias as M floats: a copy of `bias`, zeros when it is null. Every value must be finite.
std::vector<float> copy_bias(const float* bias, int64_t m, const char* who);

// Throws, naming the first bad value, unless every row i of X with `rows` (null: all rows)
// nonzero at i is finite. Vectorised for row-major X.
void check_rows_finite(const MatrixView& X, const std::vector<uint8_t>* rows, const char* who);
// True when rows [first, first + count) of X are finite (no throw: for parallel regions).
bool rows_finite(const MatrixView& X, int64_t first, int64_t count);
// K and M at the head of a payload, each 1..INT32_MAX (the products take int sizes), else the
// file is corrupt.
std::pair<int64_t, int64_t> read_dims(ByteReader& r, const char* kind);

// True when every row of X is finite, the rows split among `threads` threads.
bool rows_finite_on_threads(const MatrixView& X, int threads);
// Every one of `rows` rows of Y (leading dimension ldy) set to the m values of `row`, the rows
// split among `threads` threads (a bias copied ahead of a product that adds to Y).
void fill_rows_on_threads(float* Y, int64_t ldy, int64_t rows, const float* row, int64_t m, int threads);

// Rows [first, first + count) of X contiguous and row-major: a pointer into X when X is
// row-major, else a copy made in `buffer`. `ld` receives the leading dimension.
const float* contiguous_rows(const MatrixView& X, int64_t first, int64_t count, std::vector<float>& buffer,
                             int64_t& ld);

// [0, count) split into `parts` near-equal contiguous ranges; range `index` of them.
inline std::pair<int64_t, int64_t> partition(int64_t count, int parts, int index) {
  const int64_t base = count / parts, extra = count % parts;
  const int64_t begin = index * base + (index < extra ? index : extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

// {first row, rows} of the blocks that products of fixed block sizes (oneDNN's AMX
// primitives) cut `rows` rows into, one block per thread at a time: blocks of the largest of
// `sizes` (largest first) that still gives each of `threads` threads one, then of the smaller
// sizes for what is left. `covered` receives the rows they hold; the rest is the caller's.
template <size_t kSizes>
std::vector<std::pair<int64_t, int64_t>> fixed_row_blocks(int64_t rows, int threads, const int64_t (&sizes)[kSizes],
                                                          int64_t& covered) {
  std::vector<std::pair<int64_t, int64_t>> blocks;
  covered = 0;
  for (size_t s = 0; s < kSizes; ++s) {
    if (rows < sizes[s] * threads && s + 1 < kSizes) continue;
    for (; rows - covered >= sizes[s]; covered += sizes[s]) blocks.emplace_back(covered, sizes[s]);
  }
  return blocks;
}

// Runs work(thread, threads) on `threads` OpenMP threads; true when every call returned true
// (the kernels report non-finite input so, since nothing may throw inside the region).
template <class Work>
bool run_on_threads(int threads, Work&& work) {
  bool ok = true;
#pragma omp parallel num_threads(threads) reduction(&& : ok)
  ok = work(omp_get_thread_num(), omp_get_num_threads());
  return ok;
}

// Rows per chunk for kernels that work best on tiles of `tile_rows` rows: whole tiles, unless
// that would leave threads idle (100 rows on two threads), then the batch's share per thread
// rounded up to 16, the vector width of the tiles.
inline int64_t rows_per_chunk(int64_t rows, int threads, int64_t tile_rows) {
  const int64_t share = (rows + threads - 1) / (threads > 1 ? threads : 1);
  const int64_t rounded = (share + 15) / 16 * 16;
  return rounded < 16 ? 16 : rounded > tile_rows ? tile_rows : rounded;
}

// Runs a kernel that transposes tiles of rows (the pruned products) over all of X: chunks of
// rows_per_chunk rows taken round robin by lutmul's threads, each thread with its own
// cache-line aligned scratch of `scratch_floats`, rows made contiguous, and each row checked
// finite. `args` holds the weights; each chunk gets its own copy with x, ldx, y, ldy and
// scratch filled in, and kernel(args, 0, rows) does it. False if X had a non-finite value.
template <class Args, class Kernel>
bool run_row_tiles(const MatrixView& X, float* Y, int64_t ldy, int64_t tile_rows, size_t scratch_floats,
                   const Args& args, Kernel kernel) {
  const int64_t chunk_rows = rows_per_chunk(X.rows, num_threads(), tile_rows);
  const int64_t chunks = (X.rows + chunk_rows - 1) / chunk_rows;
  const int threads = static_cast<int>(chunks < num_threads() ? chunks : num_threads());
  return run_on_threads(threads, [&](int thread, int count) {
    const AlignedFloats scratch = aligned_floats(scratch_floats);
    std::vector<float> copy;
    bool finite = true;
    for (int64_t chunk = thread; chunk < chunks; chunk += count) {
      const int64_t first = chunk * chunk_rows, rows = std::min(chunk_rows, X.rows - first);
      int64_t ldx = 0;
      Args part = args;
      part.x = contiguous_rows(X, first, rows, copy, ldx);
      part.ldx = ldx;
      part.y = Y + first * ldy;
      part.ldy = ldy;
      part.scratch = scratch.get();
      for (int64_t i = 0; i < rows && finite; ++i) finite = all_finite(part.x + i * ldx, static_cast<size_t>(X.cols));
      kernel(part, 0, rows);
    }
    return finite;
  });
}

// How a BLAS-backed product of `rows` rows and `outputs` outputs is split among lutmul's
// threads (BLAS itself runs single-threaded, src/core/blas.h): rows when there are enough for
// every thread, else outputs, in multiples of 16 so that vector tails stay whole.
struct ProductPart {
  int64_t row_begin, row_end, output_begin, output_end;
};
std::vector<ProductPart> split_product(int64_t rows, int64_t outputs, int threads);

}  // namespace lutmul::detail
