// Hash-tree learning (MADDNESS §4.2): per codebook, four levels (or six); every node of a level
// splits on the same column, each node with its own threshold, chosen to minimise the
// summed squared error over the codebook's columns. Each tree is learned on its own
// column block of A, not on what earlier codebooks leave (see docs/quality.md).
#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <numeric>

#include "maddness/train/training.h"

namespace lutmul::train {
namespace {

// Float bits mapped so that unsigned order is numeric order (finite values).
inline uint32_t sortable_bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

// Rows of a bucket ordered by column `dim`: an LSD radix sort (3 passes of 11 bits) on
// (value bits << 32 | row) keys, stable, so ties keep row order.
void sort_by_value(const float* a, int64_t d, int64_t dim, const std::vector<int32_t>& rows,
                   std::vector<std::pair<float, int32_t>>& order, std::vector<uint64_t>& scratch) {
  const size_t count = rows.size();
  scratch.resize(2 * count);
  uint64_t* keys = scratch.data();
  uint64_t* other = keys + count;
  for (size_t i = 0; i < count; ++i)
    keys[i] = uint64_t{sortable_bits(a[rows[i] * d + dim])} << 32 | static_cast<uint32_t>(rows[i]);
  if (count > 64) {
    for (int shift = 32; shift < 64; shift += 11) {
      size_t histogram[2049] = {};
      for (size_t i = 0; i < count; ++i) ++histogram[((keys[i] >> shift) & 2047) + 1];
      for (int b = 0; b < 2048; ++b) histogram[b + 1] += histogram[b];
      for (size_t i = 0; i < count; ++i) other[histogram[(keys[i] >> shift) & 2047]++] = keys[i];
      std::swap(keys, other);
    }
  } else {
    std::sort(keys, keys + count);
  }
  order.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const int32_t row = static_cast<int32_t>(keys[i] & 0xFFFFFFFFu);
    order[i] = {a[row * d + dim], row};
  }
}

struct Split {
  double gain = 0;  // Σ_col (left_sum² / n_left + right_sum² / n_right), larger is better
  float threshold = std::numeric_limits<float>::infinity();  // everything goes left
};

// Best threshold on column `dim` of the block (n × width, row-major) for one bucket,
// scored on all of the block's columns. `order` is scratch.
Split best_split(int64_t dim, const std::vector<int32_t>& rows, const float* block, int64_t width,
                 std::vector<std::pair<float, int32_t>>& order, std::vector<uint64_t>& sort_scratch,
                 std::vector<double>& left, std::vector<double>& total) {
  Split best;
  const size_t count = rows.size();
  total.assign(static_cast<size_t>(width), 0.0);
  for (int32_t r : rows)
    for (int64_t j = 0; j < width; ++j) total[j] += block[r * width + j];
  double total_gain = 0;
  for (int64_t j = 0; j < width; ++j) total_gain += total[j] * total[j];
  best.gain = count > 0 ? total_gain / static_cast<double>(count) : 0.0;  // the no-split score
  if (count < 2) return best;

  sort_by_value(block, width, dim, rows, order, sort_scratch);
  if (order.front().first == order.back().first) return best;

  left.assign(static_cast<size_t>(width), 0.0);
  for (size_t i = 0; i + 1 < count; ++i) {
    const float* x = block + int64_t{order[i].second} * width;
    double left_squares = 0, right_squares = 0;
    for (int64_t j = 0; j < width; ++j) {
      left[j] += x[j];
      const double right = total[j] - left[j];
      left_squares += left[j] * left[j];
      right_squares += right * right;
    }
    if (order[i].first == order[i + 1].first) continue;  // equal values must share a side
    const double n_left = static_cast<double>(i + 1);
    const double gain = left_squares / n_left + right_squares / (static_cast<double>(count) - n_left);
    if (gain > best.gain) {
      const float lo = order[i].first, hi = order[i + 1].first;
      float threshold = static_cast<float>(0.5 * (static_cast<double>(lo) + static_cast<double>(hi)));
      if (!(threshold >= lo && threshold < hi)) threshold = lo;  // adjacent floats
      best = {gain, threshold};
    }
  }
  return best;
}

}  // namespace

std::vector<int64_t> subspace_bounds(int64_t dim, int ncodebooks) {
  std::vector<int64_t> begin(static_cast<size_t>(ncodebooks) + 1, 0);
  const int64_t base = dim / ncodebooks, extra = dim % ncodebooks;
  for (int c = 0; c < ncodebooks; ++c) begin[c + 1] = begin[c] + base + (c < extra ? 1 : 0);
  return begin;
}

LearnedTrees learn_trees(const float* a, int64_t n, int64_t d, const std::vector<int64_t>& bounds, int depth,
                         int split_candidates, int threads, const ProgressCallback& progress) {
  const int ncodebooks = static_cast<int>(bounds.size()) - 1;
  const int kDepth = depth, kLeaves = 1 << depth, kThresholdStride = kLeaves / 2;
  LearnedTrees out;
  out.split_dims.assign(static_cast<size_t>(ncodebooks) * kDepth, 0);
  out.thresholds.assign(static_cast<size_t>(ncodebooks) * kDepth * kThresholdStride,
                        std::numeric_limits<float>::infinity());
  out.codes.assign(static_cast<size_t>(n * ncodebooks), 0);
  out.bucket_means.assign(static_cast<size_t>(ncodebooks) * kLeaves * d, 0.f);

  std::vector<float> block;
  for (int c = 0; c < ncodebooks; ++c) {
    const int64_t first = bounds[c], width = bounds[c + 1] - bounds[c];
    // The codebook's columns, contiguous per row: what its tree splits on and is scored on.
    block.resize(static_cast<size_t>(n * width));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) std::copy(&a[i * d + first], &a[i * d + first + width], &block[i * width]);

    std::vector<std::vector<int32_t>> buckets(1);
    buckets[0].resize(static_cast<size_t>(n));
    std::iota(buckets[0].begin(), buckets[0].end(), 0);

    for (int level = 0; level < kDepth; ++level) {
      // Candidate columns: largest within-bucket sum of squared errors.
      std::vector<double> column_sse(static_cast<size_t>(width), 0.0);
      for (const auto& bucket : buckets) {
        if (bucket.empty()) continue;
        std::vector<double> sum(static_cast<size_t>(width), 0.0), squares(static_cast<size_t>(width), 0.0);
        for (int32_t r : bucket)
          for (int64_t j = 0; j < width; ++j) {
            const double x = block[r * width + j];
            sum[j] += x;
            squares[j] += x * x;
          }
        for (int64_t j = 0; j < width; ++j)
          column_sse[j] += squares[j] - sum[j] * sum[j] / static_cast<double>(bucket.size());
      }
      std::vector<int64_t> candidates(static_cast<size_t>(width));
      std::iota(candidates.begin(), candidates.end(), 0);
      const int64_t ncand = std::min<int64_t>(split_candidates, width);
      std::partial_sort(candidates.begin(), candidates.begin() + ncand, candidates.end(),
                        [&](int64_t x, int64_t y) {
                          return column_sse[x] > column_sse[y] || (column_sse[x] == column_sse[y] && x < y);
                        });
      candidates.resize(static_cast<size_t>(ncand));

      // Score every (candidate, bucket) pair independently: deterministic for any thread count.
      const int64_t nbuckets = static_cast<int64_t>(buckets.size());
      std::vector<Split> splits(static_cast<size_t>(ncand * nbuckets));
#pragma omp parallel num_threads(threads)
      {
        std::vector<std::pair<float, int32_t>> order;
        std::vector<uint64_t> sort_scratch;
        std::vector<double> left, total;
#pragma omp for schedule(dynamic)
        for (int64_t task = 0; task < ncand * nbuckets; ++task) {
          const int64_t k = task / nbuckets, b = task % nbuckets;
          splits[task] = best_split(candidates[k], buckets[b], block.data(), width, order, sort_scratch, left, total);
        }
      }
      int64_t best_k = 0;
      double best_gain = -1;
      for (int64_t k = 0; k < ncand; ++k) {
        double gain = 0;
        for (int64_t b = 0; b < nbuckets; ++b) gain += splits[k * nbuckets + b].gain;
        if (gain > best_gain) best_gain = gain, best_k = k;
      }
      const int64_t dim = candidates[best_k];
      out.split_dims[c * kDepth + level] = static_cast<int32_t>(first + dim);
      std::vector<std::vector<int32_t>> children(static_cast<size_t>(2 * nbuckets));
      for (int64_t b = 0; b < nbuckets; ++b) {
        const float threshold = splits[best_k * nbuckets + b].threshold;
        out.thresholds[(c * kDepth + level) * kThresholdStride + b] = threshold;
        for (int32_t r : buckets[b]) children[2 * b + (block[r * width + dim] > threshold ? 1 : 0)].push_back(r);
      }
      buckets.swap(children);
    }

    // Leaves: codes and each leaf's mean over the block (zero outside it). Earlier
    // codebooks' means are not subtracted first: on the real data (digits) trees learned on
    // that residual generalised worse (docs/quality.md), and the ridge step fits all
    // codebooks' prototypes jointly anyway.
    std::vector<double> acc(static_cast<size_t>(width));
    for (int leaf = 0; leaf < kLeaves; ++leaf) {
      const auto& rows = buckets[leaf];
      if (rows.empty()) continue;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int32_t r : rows) {
        const float* x = &block[r * width];
        for (int64_t j = 0; j < width; ++j) acc[j] += x[j];
      }
      float* mean = &out.bucket_means[(static_cast<size_t>(c) * kLeaves + leaf) * d + first];
      for (int64_t j = 0; j < width; ++j) mean[j] = static_cast<float>(acc[j] / static_cast<double>(rows.size()));
      for (int32_t r : rows) out.codes[r * ncodebooks + c] = static_cast<uint8_t>(leaf);
    }
    if (progress) progress("trees", c + 1, ncodebooks);
  }
  return out;
}

}  // namespace lutmul::train
