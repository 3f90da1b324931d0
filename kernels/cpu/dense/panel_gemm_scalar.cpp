// The scalar references of the panel products: each output's fused multiply-adds in k order.
#include <cmath>
#include <cstring>

#include "kernels/cpu/dense/panel_gemm.h"

namespace lutmul::kernels {
namespace {

// Weight (i, c) of a panel: float panels in column order, bfloat16 ones in pair order.
float panel_weight(const float* panel, int64_t i, int64_t c) { return panel[i * kPanelWidth + c]; }

float panel_weight(const uint16_t* panel, int64_t i, int64_t c) {
  constexpr int64_t kHalf = kPanelWidth / 2;
  const int64_t slot = c < kHalf ? 2 * c : 2 * (c - kHalf) + 1;
  const uint32_t bits = uint32_t{panel[i * kPanelWidth + slot]} << 16;
  float w;
  std::memcpy(&w, &bits, sizeof w);
  return w;
}

template <class Weight>
void panel_gemm_scalar(const PanelGemmArgs& a, const Weight* panels, int64_t panel_begin, int64_t panel_end) {
  for (int64_t p = panel_begin; p < panel_end; ++p) {
    const Weight* panel = panels + p * a.k * kPanelWidth;
    for (int64_t c = 0; c < kPanelWidth && p * kPanelWidth + c < a.m; ++c) {
      const int64_t j = p * kPanelWidth + c;
      const float bias = a.bias != nullptr ? a.bias[j] : 0.f;
      for (int64_t r = 0; r < a.rows; ++r) {
        float sum = 0.f;
        for (int64_t i = 0; i < a.k; ++i) sum = std::fma(a.x[r * a.ldx + i], panel_weight(panel, i, c), sum);
        a.y[r * a.ldy + j] = sum + bias;
      }
    }
  }
}

}  // namespace

PanelGemmFn panel_gemm_scalar_kernel() {
  return [](const PanelGemmArgs& a, int64_t begin, int64_t end) { panel_gemm_scalar(a, a.panels, begin, end); };
}

PanelGemmFn panel_gemm_bf16_scalar_kernel() {
  return [](const PanelGemmArgs& a, int64_t begin, int64_t end) { panel_gemm_scalar(a, a.bf16_panels, begin, end); };
}

}  // namespace lutmul::kernels
