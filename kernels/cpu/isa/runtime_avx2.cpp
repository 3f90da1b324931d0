// Instantiates the encoder's glue kernels for AVX2 with FMA; this file alone is built with its flags.
#include "kernels/cpu/runtime/runtime_impl.h"

namespace lutmul::kernels {

RuntimeKernelTable runtime_avx2_kernels() { return RuntimeKernels<xsimd::fma3<xsimd::avx2>>::table(); }

}  // namespace lutmul::kernels
