// Scores by which the pruning operators rank weights: |W[k,m]|, or |W[k,m]|·||X[:,k]|| with
// calibration rows (Wanda), which keeps weights on the inputs the data actually drives.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "lutmul/core/error.h"
#include "lutmul/core/matrix.h"

namespace lutmul::detail {

// ||X[:,k]|| for each input k, or all ones without calibration rows.
inline std::vector<double> input_channel_norms(const MatrixView* calibration, int64_t k, const char* who) {
  std::vector<double> norm(static_cast<size_t>(k), 1.0);
  if (calibration == nullptr) return norm;
  check_view(*calibration, "calibration");
  LUTMUL_CHECK(calibration->cols == k && calibration->rows >= 1, who, ": calibration must be N x ", k,
               " with N >= 1, got ", calibration->rows, " x ", calibration->cols);
  check_finite(*calibration, "calibration");
  std::fill(norm.begin(), norm.end(), 0.0);
  for (int64_t i = 0; i < calibration->rows; ++i)
    for (int64_t j = 0; j < k; ++j) norm[j] += double{calibration->at(i, j)} * calibration->at(i, j);
  for (double& v : norm) v = std::sqrt(v);
  return norm;
}

// K × M row-major scores of W.
inline std::vector<double> pruning_scores(const MatrixView& W, const MatrixView* calibration, const char* who) {
  const std::vector<double> norm = input_channel_norms(calibration, W.rows, who);
  std::vector<double> scores(static_cast<size_t>(W.rows * W.cols));
  for (int64_t k = 0; k < W.rows; ++k)
    for (int64_t m = 0; m < W.cols; ++m) scores[k * W.cols + m] = std::fabs(double{W.at(k, m)}) * norm[k];
  return scores;
}

}  // namespace lutmul::detail
