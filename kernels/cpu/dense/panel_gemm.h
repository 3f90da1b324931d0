// Internal interface of DenseLinear's product for a few rows on weights packed once into
// panels: Y = X·W + bias, where oneDNN has no blocked kernel for it (AVX2 CPUs: its sgemm packs
// W again on every call, and at a sentence's 16 rows that packing is most of the product).
//
// Every output is one chain of fused multiply-adds over k in order from zero, then one add of
// the bias, so every ISA gives the scalar reference's bits. Checked by the caller; no
// throwing, no allocation.
#pragma once

#include <cstdint>

namespace lutmul::kernels {

constexpr int64_t kPanelWidth = 16;  // columns of W per panel

struct PanelGemmArgs {
  const float* x = nullptr;  // rows × k, leading dimension ldx
  int64_t ldx = 0;
  int64_t rows = 0;
  int64_t k = 0;
  // ceil(m / 16) panels; panel p holds columns [16p, 16p + 16) of W as k rows of 16 floats,
  // zeros past column m (pack_panels).
  const float* panels = nullptr;
  const float* bias = nullptr;  // m floats, or null for none
  int64_t m = 0;
  float* y = nullptr;  // rows × m, leading dimension ldy
  int64_t ldy = 0;
};
// Writes Y's columns of panels [panel_begin, panel_end), every row.
using PanelGemmFn = void (*)(const PanelGemmArgs&, int64_t panel_begin, int64_t panel_end);

inline int64_t panel_count(int64_t m) { return (m + kPanelWidth - 1) / kPanelWidth; }

// W (k × m, row-major, leading dimension ldw) into `out` (panel_count(m) · k · 16 floats).
inline void pack_panels(const float* w, int64_t ldw, int64_t k, int64_t m, float* out) {
  for (int64_t p = 0; p < panel_count(m); ++p)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t c = 0; c < kPanelWidth; ++c) {
        const int64_t j = p * kPanelWidth + c;
        *out++ = j < m ? w[i * ldw + j] : 0.f;
      }
}

PanelGemmFn panel_gemm_scalar_kernel();
// Built only where the ISA is (LUTMUL_HAVE_*_KERNELS).
PanelGemmFn panel_gemm_avx2_kernel();
PanelGemmFn panel_gemm_avx512_kernel();

}  // namespace lutmul::kernels
