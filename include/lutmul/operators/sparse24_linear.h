// 2:4 semi-structured pruning: in every group of four consecutive inputs, each output keeps
// the two weights with the highest score (|W|, or |W|·||X_k|| with calibration rows, as in
// Wanda) and drops the other two. Stored as the kept values plus two 2-bit positions per
// group and output, with its own kernel: rows of X in vector lanes, each output's kept
// inputs picked by address arithmetic on a transposed tile of rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul {

class Sparse24Linear final : public SizedLinearOperator {
 public:
  // W is K × M with K a multiple of 4; bias M floats or null. Ties keep the lower input.
  Sparse24Linear(const MatrixView& W, const float* bias = nullptr, const MatrixView* calibration = nullptr);

  // The scalar reference, whatever the CPU.
  void forward_reference(const MatrixView& X, float* Y, int64_t ldy) const;
  int64_t bytes() const override;
  double multiply_adds_per_row() const override { return static_cast<double>(2 * groups_ * m_); }

  // The pruned weight as a dense K × M row-major matrix (zeros where pruned).
  std::vector<float> pruned_dense() const;

  std::vector<uint8_t> payload() const override;
  static std::unique_ptr<Sparse24Linear> from_payload(const uint8_t* data, size_t size);

 private:
  void compute(const MatrixView& X, float* Y, int64_t ldy) const override;
  Sparse24Linear() : SizedLinearOperator("sparse24") {}
  void run(const MatrixView& X, float* Y, int64_t ldy, bool reference) const;

  int64_t groups_ = 0;  // K / 4
  std::vector<float> values_;  // see kernels/cpu/pruned/sparse24_kernels.h for the layout
  std::vector<uint8_t> codes_;
  std::vector<float> bias_;    // M
};

}  // namespace lutmul
