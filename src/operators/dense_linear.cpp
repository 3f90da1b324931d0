#include "lutmul/operators/dense_linear.h"

#include <algorithm>

#include "core/sgemm.h"
#include "core/file_format.h"
#include "lutmul/core/error.h"
#include "lutmul/core/isa.h"
#include "lutmul/core/threading.h"
#include "operators/dense_small_batches.h"
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
  small_ = std::make_shared<const detail::SmallBatchProduct>(weights_.data(), bias_.data(), k_, m_);
}

DenseLinear::DenseLinear(const DenseLinear& other)
    : SizedLinearOperator(other),
      weights_(other.weights_),
      bias_(other.bias_),
      small_(std::make_shared<const detail::SmallBatchProduct>(weights_.data(), bias_.data(), k_, m_)) {}

DenseLinear& DenseLinear::operator=(const DenseLinear& other) {
  if (this != &other) {
    SizedLinearOperator::operator=(other);
    weights_ = other.weights_;
    bias_ = other.bias_;
    small_ = std::make_shared<const detail::SmallBatchProduct>(weights_.data(), bias_.data(), k_, m_);
  }
  return *this;
}

DenseLinear::~DenseLinear() = default;

void DenseLinear::compute(const MatrixView& X, float* Y, int64_t ldy) const { product(X, Y, ldy, true); }

void DenseLinear::forward_unchecked(const MatrixView& X, float* Y, int64_t ldy) const {
  (void)active_isa();  // as forward: an LUTMUL_ISA this CPU cannot run is an error
  check_forward(X, Y, ldy);
  if (X.rows > 0) product(X, Y, ldy, false);
}

void DenseLinear::product(const MatrixView& X, float* Y, int64_t ldy, bool check_finite) const {
  const int threads = num_threads();
  // Every output of a row sums every input of that row times a weight, so one NaN or infinity
  // in a row of X leaves no output of the row finite: a finite Y proves X finite. So the
  // smaller of the two is checked, X before the product or Y after it (a column-major X is
  // read with a stride, so Y then).
  const bool check_x = check_finite && X.layout == Layout::row_major && k_ < m_;
  const bool check_y = check_finite && !check_x;
  if (check_x && !detail::rows_finite_on_threads(X, threads)) detail::check_rows_finite(X, nullptr, "dense");
  // Where the panels run they take every call (a column-major X as a row-major copy), so a
  // row's bits never depend on the layout, the strides or the other rows.
  std::vector<float> copy;
  int64_t ldx = X.leading_dim();
  const float* x = X.layout == Layout::row_major ? X.data : nullptr;
  if (x == nullptr && small_->on_panels()) x = detail::contiguous_rows(X, 0, X.rows, copy, ldx);
  if (!(x != nullptr && small_->run(x, ldx, X.rows, Y, ldy, threads))) {
    detail::fill_rows_on_threads(Y, ldy, X.rows, bias_.data(), m_, threads);
    // One product on lutmul's thread count: oneDNN splits it and shares each packed block of W
    // between its threads (split by lutmul, every thread packed its own copy: 3-8 % slower).
    detail::sgemm(X.layout != Layout::row_major, false, X.rows, m_, k_, X.data, X.leading_dim(), weights_.data(), m_,
                  1.f, Y, ldy, threads);
  }
  // A non-finite Y from a finite X is an overflow of finite values: no error, as for every kind.
  if (check_y && !detail::rows_finite_on_threads(MatrixView::row_major(Y, X.rows, m_, ldy), threads))
    detail::check_rows_finite(X, nullptr, "dense");
}

int64_t DenseLinear::bytes() const {
  return static_cast<int64_t>((weights_.size() + bias_.size()) * sizeof(float));
}

std::vector<uint8_t> DenseLinear::payload() const {
  return detail::pack(k_, m_, weights_, bias_);
}

std::unique_ptr<DenseLinear> DenseLinear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  const auto [k, m] = detail::read_dims(r, "dense");
  const std::vector<float> weights = r.get_array<float>("weights", static_cast<uint64_t>(k) * static_cast<uint64_t>(m));
  const std::vector<float> bias = r.get_array<float>("bias", static_cast<uint64_t>(m));
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the dense weights");
  detail::check_all_finite(weights, "weights", "operator file");
  detail::check_all_finite(bias, "bias", "operator file");
  return std::make_unique<DenseLinear>(MatrixView::row_major(weights.data(), k, m), bias.data());
}

}  // namespace lutmul
