// int8 kernels for AVX-VNNI (VEX-encoded 256-bit vpdpbusd): the AVX2 row quantizer and the
// shared ymm dot-4 micro-kernel.
#include "kernels/cpu/int8/int8_vnni_ymm_impl.h"

namespace lutmul::kernels {
namespace {

struct VexDot {
  static __m256i dpbusd(__m256i acc, __m256i u8, __m256i s8) { return _mm256_dpbusd_avx_epi32(acc, u8, s8); }
};

}  // namespace

const Int8KernelTable* int8_avxvnni_kernels() {
  static const Int8KernelTable table{int8_avx2_kernels()->quantize, gemm_vnni_ymm<VexDot>,
                                     int8_avx2_kernels()->epilogue};
  return &table;
}

}  // namespace lutmul::kernels
