#include "lutmul/operators/maddness_linear.h"

#include <utility>

#include "lutmul/core/error.h"

namespace lutmul {

MaddnessLinear::MaddnessLinear(const MatrixView& W, const float* bias, const MatrixView& calibration,
                               MaddnessConfig config)
    : model_(config) {
  model_.fit(calibration, W, bias);
}

MaddnessLinear::MaddnessLinear(Maddness model) : model_(std::move(model)) {
  LUTMUL_CHECK(model_.encoder_fitted() && model_.has_weights(),
               "MaddnessLinear: the model must be fitted and have weights");
}

void MaddnessLinear::forward(const MatrixView& X, float* Y, int64_t ldy) const {
  check_forward(X, Y, ldy);
  model_.matmul(X, Y, ldy);
}

void MaddnessLinear::forward_fused(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  check_forward(X, Y, ldy);
  model_.matmul(X, Y, ldy, epilogue);
}

int64_t MaddnessLinear::bytes() const {
  const int64_t c = model_.ncodebooks();
  return static_cast<int64_t>(model_.quantized_tables().size()) +
         c * model_.tree_depth() * static_cast<int64_t>(sizeof(int32_t) + (model_.leaves() / 2) * sizeof(float)) +
         (c + 2 * model_.output_dim()) * static_cast<int64_t>(sizeof(float));
}

double MaddnessLinear::multiply_adds_per_row() const {
  return static_cast<double>(model_.ncodebooks()) * static_cast<double>(model_.output_dim());
}

std::vector<uint8_t> MaddnessLinear::payload() const { return model_.payload(Maddness::SavedAs::operator_); }

std::unique_ptr<MaddnessLinear> MaddnessLinear::from_payload(const uint8_t* data, size_t size) {
  return std::make_unique<MaddnessLinear>(Maddness::from_payload(data, size));
}

}  // namespace lutmul
