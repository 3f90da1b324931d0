// Low-rank factorisation: W (K × M) ≈ U·V with U (K × r) and V (r × M) from a truncated
// SVD (LAPACK dgesdd), and a forward of two BLAS products, Y = (X·U)·V + bias, which costs
// r·(K + M) multiply-adds per row instead of K·M.
//
// The data-aware variant minimises the error on the product X·W of calibration rows rather
// than on W: with C = XᵀX/N = Q·Λ·Qᵀ it takes the SVD of S·W, S = (Λ + δ)^½·Qᵀ, and maps
// the left factor back through S⁻¹. δ = damping · trace(C)/K keeps S invertible when C is
// singular (fewer rows than inputs, inputs that never vary), at the cost of a small ridge
// term δ·‖ΔW‖² in the objective.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul {

enum class RankRule {
  fixed,      // rank = LowRankConfig::rank
  energy,     // smallest r keeping a share `energy` of Σσ² (of S·W when data-aware)
  max_error,  // smallest r whose relative error on the calibration rows is ≤ max_error
};

struct LowRankConfig {
  RankRule rule = RankRule::fixed;
  int64_t rank = 1;         // fixed: 1 ≤ rank ≤ min(K, M)
  double energy = 0.9;      // energy: in (0, 1]
  double max_error = 0.05;  // max_error: > 0, measured as ‖XW + b − Ŷ‖_F / ‖XW + b‖_F
  bool data_aware = false;  // whiten by the calibration rows' second moment (needs them)
  double damping = 1e-3;    // data-aware: δ relative to the mean eigenvalue of C, > 0
};

class LowRankLinear final : public SizedLinearOperator {
 public:
  // W is K × M, bias M floats or null. Calibration rows (N × K) are needed for the
  // max_error rule and the data-aware variant; with any rule they also fill
  // calibration_errors().
  LowRankLinear(const MatrixView& W, const float* bias = nullptr, LowRankConfig config = {},
                const MatrixView* calibration = nullptr);
  // From factors directly (a saved operator): U is K × r, V is r × M.
  LowRankLinear(const MatrixView& U, const MatrixView& V, const float* bias);

  int64_t bytes() const override;
  double multiply_adds_per_row() const override {
    return static_cast<double>(rank_) * static_cast<double>(k_ + m_);
  }

  int64_t rank() const { return rank_; }
  const std::vector<float>& u() const { return u_; }  // K × r, row-major (singular values folded in)
  const std::vector<float>& v() const { return v_; }  // r × M, row-major (orthonormal rows unless data-aware)
  const std::vector<float>& bias() const { return bias_; }
  // The min(K, M) singular values the rank was chosen from (of W, or of S·W), descending;
  // empty when built from factors.
  const std::vector<double>& singular_values() const { return singular_values_; }
  // With calibration rows: the relative error on them at every rank 0..min(K, M), from the
  // SVD in double precision (the float forward adds rounding of about 1e-7); else (or when
  // X·W + bias is zero on them) empty.
  const std::vector<double>& calibration_errors() const { return calibration_errors_; }

  std::vector<uint8_t> payload() const override;
  static std::unique_ptr<LowRankLinear> from_payload(const uint8_t* data, size_t size);

 private:
  // Rejects non-finite values in X (found through the product X·U, which they poison).
  void compute(const MatrixView& X, float* Y, int64_t ldy) const override;
  int64_t rank_ = 0;
  std::vector<float> u_, v_, bias_;
  std::vector<double> singular_values_, calibration_errors_;
};

}  // namespace lutmul
