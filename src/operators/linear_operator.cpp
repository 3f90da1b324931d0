#include "lutmul/operators/linear_operator.h"

#include <cmath>
#include <vector>

#include "core/blas.h"
#include "core/kernel_registry.h"
#include "lutmul/core/error.h"
#include "lutmul/core/isa.h"
#include "lutmul/core/threading.h"

namespace lutmul {

Matrix LinearOperator::forward(const MatrixView& X) const {
  Matrix Y(X.rows, output_dim());
  forward(X, Y.data(), output_dim());
  return Y;
}

void LinearOperator::forward_with(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  if (epilogue.plain()) return forward(X, Y, ldy);
  if (fuses_epilogue()) return forward_fused(X, Y, ldy, epilogue);
  check_forward(X, Y, ldy);
  const int64_t n = X.rows, m = output_dim();
  if (n == 0) return;
  std::vector<float> product;
  float* out = Y;
  int64_t ld = ldy;
  if (epilogue.accumulate) {
    product.resize(static_cast<size_t>(n * m));
    out = product.data();
    ld = m;
  }
  forward(X, out, ld);
  const kernels::GeluFn gelu = detail::active_kernels().runtime.gelu;
  const bool activate = epilogue.activation == Epilogue::Activation::gelu;
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    if (activate) gelu(out, ld, m, nullptr, r, r + 1);
    if (epilogue.accumulate)
      for (int64_t j = 0; j < m; ++j) Y[r * ldy + j] += out[r * m + j];
  }
}

void LinearOperator::forward_fused(const MatrixView&, float*, int64_t, const Epilogue&) const {
  throw Error(kind() + " does not fuse epilogues (forward_with runs it unfused)");
}

void LinearOperator::check_forward(const MatrixView& X, const float* Y, int64_t ldy) const {
  check_view(X, "X");
  LUTMUL_CHECK(X.cols == input_dim(), kind(), " forward: X must have K = ", input_dim(), " columns, got ", X.rows,
               " x ", X.cols);
  LUTMUL_CHECK(ldy >= output_dim(), kind(), " forward: ldy (", ldy, ") is smaller than M (", output_dim(), ")");
  LUTMUL_CHECK(Y != nullptr || X.rows == 0, kind(), " forward: Y is null");
}

void SizedLinearOperator::forward(const MatrixView& X, float* Y, int64_t ldy) const {
  // An LUTMUL_ISA this CPU or build cannot run is an error for every kind, also those whose
  // product is oneDNN's and never reaches lutmul's kernels (dense, bf16).
  (void)active_isa();
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  compute(X, Y, ldy);
}

double LinearOperator::relative_error(const MatrixView& X, const MatrixView& W, const float* bias) const {
  check_view(W, "W");
  LUTMUL_CHECK(W.rows == input_dim() && W.cols == output_dim(), "relative_error: W must be ", input_dim(), " x ",
               output_dim(), ", got ", W.rows, " x ", W.cols);
  const Matrix approx = forward(X);
  double num = 0, den = 0;
  std::vector<double> exact(static_cast<size_t>(W.cols));
  for (int64_t i = 0; i < X.rows; ++i) {
    for (int64_t j = 0; j < W.cols; ++j) exact[j] = bias != nullptr ? bias[j] : 0.0;
    for (int64_t k = 0; k < X.cols; ++k) {
      const double x = X.at(i, k);
      for (int64_t j = 0; j < W.cols; ++j) exact[j] += x * W.at(k, j);
    }
    for (int64_t j = 0; j < W.cols; ++j) {
      const double diff = exact[j] - approx(i, j);
      num += diff * diff;
      den += exact[j] * exact[j];
    }
  }
  LUTMUL_CHECK(den > 0, "relative_error: the exact product is zero");
  return std::sqrt(num / den);
}

}  // namespace lutmul
