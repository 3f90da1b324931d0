// The scalar reference of the panel product: each output's fused multiply-adds in k order.
#include <cmath>

#include "kernels/cpu/dense/panel_gemm.h"

namespace lutmul::kernels {
namespace {

void panel_gemm_scalar(const PanelGemmArgs& a, int64_t panel_begin, int64_t panel_end) {
  for (int64_t p = panel_begin; p < panel_end; ++p) {
    const float* panel = a.panels + p * a.k * kPanelWidth;
    for (int64_t c = 0; c < kPanelWidth && p * kPanelWidth + c < a.m; ++c) {
      const int64_t j = p * kPanelWidth + c;
      const float bias = a.bias != nullptr ? a.bias[j] : 0.f;
      for (int64_t r = 0; r < a.rows; ++r) {
        float sum = 0.f;
        for (int64_t i = 0; i < a.k; ++i) sum = std::fma(a.x[r * a.ldx + i], panel[i * kPanelWidth + c], sum);
        a.y[r * a.ldy + j] = sum + bias;
      }
    }
  }
}

}  // namespace

PanelGemmFn panel_gemm_scalar_kernel() { return panel_gemm_scalar; }

}  // namespace lutmul::kernels
