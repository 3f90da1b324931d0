// Internal: the two learning steps of MADDNESS.
#pragma once

#include <cstdint>
#include <vector>

#include "lutmul/operators/maddness.h"

namespace lutmul::train {

// Column blocks: codebook c owns columns [begin[c], begin[c + 1]); when C does not divide
// D the first D mod C blocks get one extra column.
std::vector<int64_t> subspace_bounds(int64_t dim, int ncodebooks);

struct LearnedTrees {
  std::vector<int32_t> split_dims;  // C × depth
  std::vector<float> thresholds;    // C × depth × 2^(depth-1)
  std::vector<uint8_t> codes;       // N × C leaf of each training row
  std::vector<float> bucket_means;  // 2^depth·C × D leaf means over each codebook's block, zero elsewhere
};

// Learns one balanced tree of `depth` levels (4 or 6) per codebook, each on its own column
// block of A. `a` is N × D row-major and finite.
LearnedTrees learn_trees(const float* a, int64_t n, int64_t d, const std::vector<int64_t>& bounds, int depth,
                         int split_candidates, int threads, const ProgressCallback& progress);

struct RidgeFit {
  std::vector<float> prototypes;  // KC × D
  double lambda = 0;              // multiple of the mean bucket size; +inf: bucket means won
};

// Prototypes P minimising ||A − G·P||² + λ||P − P0||² (G the one-hot codes, P0 the bucket
// means), λ chosen on held-out rows among `lambdas` and +inf, then refit on all rows.
RidgeFit fit_ridge_prototypes(const float* a, int64_t n, int64_t d, const LearnedTrees& trees,
                              int ncodebooks, int leaves, std::vector<double> lambdas, double heldout_fraction,
                              uint64_t seed, int threads, const ProgressCallback& progress);

}  // namespace lutmul::train
