// Instantiates the panel product for AVX-512; this file alone is built with its flags.
#include "kernels/cpu/dense/panel_gemm_impl.h"

namespace lutmul::kernels {

PanelGemmFn panel_gemm_avx512_kernel() { return PanelGemm<xsimd::avx512bw>::run; }

}  // namespace lutmul::kernels
