// Instantiates the encoder's glue kernels for AVX-512; this file alone is built with its flags.
#include "kernels/cpu/runtime/runtime_impl.h"

namespace lutmul::kernels {

RuntimeKernelTable runtime_avx512_kernels() { return RuntimeKernels<xsimd::avx512bw>::table(); }

}  // namespace lutmul::kernels
