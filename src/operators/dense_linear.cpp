#include "lutmul/dense_linear.h"

#include <cmath>

#include "blas.h"
#include "file_format.h"
#include "lutmul/error.h"
#include "lutmul/threading.h"

namespace lutmul {

DenseLinear::DenseLinear(const MatrixView& W, const float* bias) {
  check_view(W, "W");
  LUTMUL_CHECK(W.rows >= 1 && W.cols >= 1, "DenseLinear: W must not be empty, got ", W.rows, " x ", W.cols);
  check_finite(W, "W");
  k_ = W.rows;
  m_ = W.cols;
  weights_.resize(static_cast<size_t>(k_ * m_));
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t j = 0; j < m_; ++j) weights_[i * m_ + j] = W.at(i, j);
  bias_.assign(static_cast<size_t>(m_), 0.f);
  if (bias != nullptr)
    for (int64_t j = 0; j < m_; ++j) {
      LUTMUL_CHECK(std::isfinite(bias[j]), "DenseLinear: bias has a non-finite value at index ", j);
      bias_[j] = bias[j];
    }
}

void DenseLinear::forward(const MatrixView& X, float* Y, int64_t ldy) const {
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  for (int64_t i = 0; i < X.rows; ++i)
    for (int64_t j = 0; j < m_; ++j) Y[i * ldy + j] = bias_[j];
  const detail::BlasThreadScope threads(num_threads());
  if (X.rows == 1) {  // a GEMV: y = Wᵀ·x + bias, BLAS's matrix-vector kernel
    const int64_t stride = X.layout == Layout::row_major ? 1 : X.leading_dim();
    cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(k_), static_cast<int>(m_), 1.f, weights_.data(),
                static_cast<int>(m_), X.data, static_cast<int>(stride), 1.f, Y, 1);
    return;
  }
  const bool row_major = X.layout == Layout::row_major;
  cblas_sgemm(CblasRowMajor, row_major ? CblasNoTrans : CblasTrans, CblasNoTrans, static_cast<int>(X.rows),
              static_cast<int>(m_), static_cast<int>(k_), 1.f, X.data, static_cast<int>(X.leading_dim()),
              weights_.data(), static_cast<int>(m_), 1.f, Y, static_cast<int>(ldy));
}

int64_t DenseLinear::bytes() const {
  return static_cast<int64_t>((weights_.size() + bias_.size()) * sizeof(float));
}

std::vector<uint8_t> DenseLinear::payload() const {
  detail::ByteWriter w;
  w.put<int64_t>(k_);
  w.put<int64_t>(m_);
  w.put_array(weights_);
  w.put_array(bias_);
  return std::move(w.bytes());
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
