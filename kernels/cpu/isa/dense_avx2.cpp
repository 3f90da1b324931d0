// Instantiates the panel product for AVX2 with FMA; this file alone is built with its flags.
#include "kernels/cpu/dense/panel_gemm_impl.h"

namespace lutmul::kernels {

PanelGemmFn panel_gemm_avx2_kernel() { return PanelGemm<xsimd::fma3<xsimd::avx2>>::run; }

}  // namespace lutmul::kernels
