// Instantiates the panel products (float and bfloat16 panels) for AVX2 with FMA; this file
// alone is built with its flags.
#include "kernels/cpu/dense/panel_gemm_impl.h"

namespace lutmul::kernels {

PanelGemmFn panel_gemm_avx2_kernel() { return PanelGemm<xsimd::fma3<xsimd::avx2>>::run; }
PanelGemmFn panel_gemm_bf16_avx2_kernel() {
  return PanelGemm<xsimd::fma3<xsimd::avx2>, Bf16Panels<xsimd::fma3<xsimd::avx2>>>::run;
}

}  // namespace lutmul::kernels
