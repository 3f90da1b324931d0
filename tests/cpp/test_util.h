// Shared test data: structured matrices (MADDNESS needs structure, not Gaussian noise).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "lutmul/operators/maddness.h"

namespace lutmul::testing {

// n × d row-major: rank-r signal plus noise of the given relative size.
std::vector<float> low_rank_rows(int64_t n, int64_t d, int64_t rank, float noise, uint64_t seed);
// n × d row-major: rows around `clusters` centres.
std::vector<float> clustered_rows(int64_t n, int64_t d, int clusters, float spread, uint64_t seed);
// n × d row-major uniform values in [lo, hi).
std::vector<float> uniform(int64_t n, int64_t d, float lo, float hi, uint64_t seed);
// Row-major → column-major copy.
std::vector<float> to_col_major(const std::vector<float>& a, int64_t rows, int64_t cols);
// Exact Y = A·B (row-major, double accumulation).
std::vector<float> exact_product(const std::vector<float>& a, const std::vector<float>& b, int64_t n, int64_t d, int64_t m);
// ||Y − Ŷ||_F / ||Y||_F.
double relative_error(const std::vector<float>& exact, const std::vector<float>& approx);

}  // namespace lutmul::testing
