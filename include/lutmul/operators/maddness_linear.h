// MADDNESS behind the operator contract: trained on calibration rows for a known W, then
// forward is encode + table scan (include/lutmul/operators/maddness.h).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "lutmul/operators/linear_operator.h"
#include "lutmul/operators/maddness.h"

namespace lutmul {

class MaddnessLinear final : public LinearOperator {
 public:
  // Learns the encoder from the calibration rows (N × K, N ≥ 16; MADDNESS needs data) and
  // builds tables for W (K × M) and bias (M floats or null).
  MaddnessLinear(const MatrixView& W, const float* bias, const MatrixView& calibration, MaddnessConfig config = {});
  // Wraps a fitted model that has weights.
  explicit MaddnessLinear(Maddness model);

  std::string kind() const override { return "maddness"; }
  int64_t input_dim() const override { return model_.input_dim(); }
  int64_t output_dim() const override { return model_.output_dim(); }
  void forward(const MatrixView& X, float* Y, int64_t ldy) const override;
  using LinearOperator::forward;
  // The scan applies the activation and the accumulation as it stores Y.
  bool fuses_epilogue() const override { return true; }
  // Tables, prototypes are not kept for inference: 8-bit tables, split dimensions and
  // thresholds, offsets and bias.
  int64_t bytes() const override;
  // Table lookups-and-adds per row (C·M); encoding adds 4·C comparisons.
  double multiply_adds_per_row() const override;

  const Maddness& model() const { return model_; }

  std::vector<uint8_t> payload() const override;
  static std::unique_ptr<MaddnessLinear> from_payload(const uint8_t* data, size_t size);

 protected:
  void forward_fused(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const override;

 private:
  Maddness model_;
};

}  // namespace lutmul
