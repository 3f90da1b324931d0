// The exact baseline operator: Y = X·W + bias through oneDNN: its sgemm, or for 1 to 32 dense
// rows a matmul over weights it reordered once (src/operators/dense_small_batches.h).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul {
namespace detail {
class SmallBatchProduct;
}

class DenseLinear final : public SizedLinearOperator {
 public:
  // W is K × M (copied), bias is M floats or null.
  DenseLinear(const MatrixView& W, const float* bias = nullptr);
  // A copy gets its own small-batch product (it reads the copy's weights).
  DenseLinear(const DenseLinear& other);
  DenseLinear& operator=(const DenseLinear& other);
  DenseLinear(DenseLinear&&) noexcept = default;  // the vectors keep their buffers
  DenseLinear& operator=(DenseLinear&&) noexcept = default;
  ~DenseLinear() override;

  int64_t bytes() const override;
  double multiply_adds_per_row() const override { return static_cast<double>(k_) * static_cast<double>(m_); }

  // forward without the finite-values check of the contract (linear_operator.h): the same Y,
  // bit for bit, for a caller that checks what it makes of Y itself. A NaN or infinity in X
  // then gives rows of Y that are not finite instead of an error. The encoder runs its own
  // hidden states through it and checks its last hidden states once, which every value that
  // is not finite reaches through the residual stream (src/runtime/encoder.cpp).
  void forward_unchecked(const MatrixView& X, float* Y, int64_t ldy) const;

  std::vector<uint8_t> payload() const override;
  static std::unique_ptr<DenseLinear> from_payload(const uint8_t* data, size_t size);
  const std::vector<float>& weights() const { return weights_; }  // K × M, row-major
  const std::vector<float>& bias() const { return bias_; }        // M (zeros when none was given)

 private:
  void compute(const MatrixView& X, float* Y, int64_t ldy) const override;
  void product(const MatrixView& X, float* Y, int64_t ldy, bool check_finite) const;
  DenseLinear() : SizedLinearOperator("dense") {}
  std::vector<float> weights_;  // K × M row-major
  std::vector<float> bias_;     // M
  std::shared_ptr<const detail::SmallBatchProduct> small_;  // reads weights_ and bias_
};

}  // namespace lutmul
