// Internal interface of DenseLinear's product for a few rows on weights packed once into
// panels: Y = X·W + bias, where oneDNN has no blocked kernel for it (AVX2 CPUs: its sgemm packs
// W again on every call, and at a sentence's 16 rows that packing is most of the product).
// Bf16Linear's product where oneDNN has no bfloat16 one (CPUs without AVX-512) runs the same
// tiles on bfloat16 panels, widened in registers, over X rounded to bfloat16 by the caller.
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
  // For the bfloat16 kernels, instead of panels: the same panels as bfloat16 bit patterns in
  // pair order (pack_bf16_panels).
  const uint16_t* bf16_panels = nullptr;
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

// bfloat16 panels: per k, the panel's 16 columns as 8 pairs, pair c holding column c in its
// low half and column c + 8 in its high half. A 32-bit lane's low half shifted up and its high
// half masked are then the floats of columns c and c + 8, exactly (a bfloat16 value is a float
// whose low 16 bits are zero): two vectors of 8 columns from one 32-byte load.
inline void pack_bf16_panels(const uint16_t* w, int64_t ldw, int64_t k, int64_t m, uint16_t* out) {
  constexpr int64_t kHalf = kPanelWidth / 2;
  for (int64_t p = 0; p < panel_count(m); ++p)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t c = 0; c < kPanelWidth; ++c) {
        const int64_t j = p * kPanelWidth + (c % 2 == 0 ? c / 2 : kHalf + c / 2);
        *out++ = j < m ? w[i * ldw + j] : uint16_t{0};
      }
}

PanelGemmFn panel_gemm_scalar_kernel();
PanelGemmFn panel_gemm_bf16_scalar_kernel();  // reads bf16_panels; X holds bfloat16 values
// Built only where the ISA is (LUTMUL_HAVE_*_KERNELS). bfloat16 panels on AVX2 only: CPUs
// with AVX-512 have oneDNN's bfloat16 product.
PanelGemmFn panel_gemm_avx2_kernel();
PanelGemmFn panel_gemm_bf16_avx2_kernel();
PanelGemmFn panel_gemm_avx512_kernel();

}  // namespace lutmul::kernels
