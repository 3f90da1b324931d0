#include "lutmul/operators/dense_linear.h"

#include <algorithm>

#include "core/blas.h"
#include "core/file_format.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "operators/operator_skeleton.h"

namespace lutmul {

DenseLinear::DenseLinear(const MatrixView& W, const float* bias)
    : SizedLinearOperator("dense") {
  detail::check_weights(W, "DenseLinear");
  k_ = W.rows;
  m_ = W.cols;
  weights_.resize(static_cast<size_t>(k_ * m_));
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t j = 0; j < m_; ++j) weights_[i * m_ + j] = W.at(i, j);
  bias_ = detail::copy_bias(bias, m_, "DenseLinear");
}

void DenseLinear::compute(const MatrixView& X, float* Y, int64_t ldy) const {
  detail::use_single_threaded_blas();
  const bool row_major = X.layout == Layout::row_major;
  const int64_t ldx = X.leading_dim();
  const std::vector<detail::ProductPart> parts = detail::split_product(X.rows, m_, num_threads());
  // OpenMP may give fewer threads than asked (inside another parallel region): parts round robin.
  const bool finite = detail::run_on_threads(static_cast<int>(parts.size()), [&](int thread, int count) {
    bool rows_ok = true;
    for (size_t part = static_cast<size_t>(thread); part < parts.size(); part += static_cast<size_t>(count)) {
      const detail::ProductPart& p = parts[part];
      // Each row is checked once, by the part that holds its first outputs, in that thread.
      if (p.output_begin == 0) rows_ok = detail::rows_finite(X, p.row_begin, p.row_end - p.row_begin) && rows_ok;
      const int64_t rows = p.row_end - p.row_begin, outputs = p.output_end - p.output_begin;
      // Row i of X starts at data + i·ld (row-major) or data + i (column-major).
      const float* x = X.data + p.row_begin * (row_major ? ldx : 1);
      float* y = Y + p.row_begin * ldy + p.output_begin;
      const float* w = weights_.data() + p.output_begin;
      for (int64_t i = 0; i < rows; ++i) std::copy_n(bias_.data() + p.output_begin, outputs, y + i * ldy);
      if (rows == 1) {  // a GEMV: y = Wᵀ·x + bias, BLAS's matrix-vector kernel
        cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(k_), static_cast<int>(outputs), 1.f, w,
                    static_cast<int>(m_), x, static_cast<int>(row_major ? 1 : ldx), 1.f, y, 1);
      } else {
        cblas_sgemm(CblasRowMajor, row_major ? CblasNoTrans : CblasTrans, CblasNoTrans, static_cast<int>(rows),
                    static_cast<int>(outputs), static_cast<int>(k_), 1.f, x, static_cast<int>(ldx), w,
                    static_cast<int>(m_), 1.f, y, static_cast<int>(ldy));
      }
    }
    return rows_ok;
  });
  if (!finite) detail::check_rows_finite(X, nullptr, "dense");  // throws, naming the value
}

int64_t DenseLinear::bytes() const {
  return static_cast<int64_t>((weights_.size() + bias_.size()) * sizeof(float));
}

std::vector<uint8_t> DenseLinear::payload() const {
  return detail::pack(k_, m_, weights_, bias_);
}

std::unique_ptr<DenseLinear> DenseLinear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  const int64_t k = r.get<int64_t>("K"), m = r.get<int64_t>("M");
  LUTMUL_CHECK(k >= 1 && m >= 1 && k <= INT32_MAX && m <= INT32_MAX, "operator file is corrupt: dense K = ", k, ", M = ", m);
  const std::vector<float> weights = r.get_array<float>("weights", static_cast<uint64_t>(k) * static_cast<uint64_t>(m));
  const std::vector<float> bias = r.get_array<float>("bias", static_cast<uint64_t>(m));
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the dense weights");
  detail::check_all_finite(weights, "weights", "operator file");
  detail::check_all_finite(bias, "bias", "operator file");
  return std::make_unique<DenseLinear>(MatrixView::row_major(weights.data(), k, m), bias.data());
}

}  // namespace lutmul
