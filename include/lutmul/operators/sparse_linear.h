// Unstructured pruning: the smallest weights (by magnitude, or by |W|·||X_k|| as in Wanda
// when calibration rows are given) set to zero, the rest kept in a compressed sparse column
// layout (one column per output, cut into blocks of 128 inputs so that the kernel's slice of
// X stays in cache), and a product vectorised across the batch: for a tile of rows, every
// kept weight is one fused multiply-add of 16 rows at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul {

struct SparseConfig {
  double sparsity = 0.9;  // share of weights set to zero, in [0, 1)
  // If ≥ 0, keep exactly this many weights (at most K·M) and ignore `sparsity`: how
  // prune_globally hands each layer its share of a budget ranked across layers.
  int64_t kept_weights = -1;
};

class SparseLinear final : public SizedLinearOperator {
 public:
  // W is K × M, bias M floats or null. With calibration rows (N × K) weights are scored by
  // |W[k,m]|·||X[:,k]||, else by |W[k,m]|. Ties keep the earlier weight.
  SparseLinear(const MatrixView& W, const float* bias = nullptr, SparseConfig config = {},
               const MatrixView* calibration = nullptr);

  // The scalar reference, whatever the CPU.
  void forward_reference(const MatrixView& X, float* Y, int64_t ldy) const;
  int64_t bytes() const override;
  double multiply_adds_per_row() const override { return static_cast<double>(values_.size()); }

  int64_t nonzeros() const { return static_cast<int64_t>(values_.size()); }
  // The pruned weight as a dense K × M row-major matrix (zeros where pruned).
  std::vector<float> pruned_dense() const;

  std::vector<uint8_t> payload() const override;
  static std::unique_ptr<SparseLinear> from_payload(const uint8_t* data, size_t size);

 private:
  void compute(const MatrixView& X, float* Y, int64_t ldy) const override;
  SparseLinear() : SizedLinearOperator("sparse") {}
  void run(const MatrixView& X, float* Y, int64_t ldy, bool reference) const;

  int64_t blocks_ = 0;                  // K-blocks of the kernels' block size
  std::vector<int64_t> segment_start_;  // blocks·M + 1: block b, column m at b·M + m
  std::vector<uint8_t> offsets_;        // k − b·block size of each kept weight, ascending per segment
  std::vector<float> values_;
  std::vector<float> bias_;            // M
};

// Global pruning: one ranking of every weight of several layers (by |W|, or |W|·||X_k|| for the
// layers given calibration rows), the lowest `sparsity` share of them all set to zero, so
// that layers whose weights matter less lose more. Ties keep the earlier layer, then the
// earlier weight. `biases` and `calibrations` are empty or one entry (possibly null) per layer.
std::vector<SparseLinear> prune_globally(const std::vector<MatrixView>& weights, double sparsity,
                                         const std::vector<const float*>& biases = {},
                                         const std::vector<const MatrixView*>& calibrations = {});

}  // namespace lutmul
