// The AVX-VNNI micro-kernel with EVEX-encoded vpdpbusd (AVX-512 VNNI + VL): the same code
// as int8_avxvnni.cpp, runnable on AVX-512 CPUs that lack AVX-VNNI, so that the tests check
// it bit for bit there. Not dispatched: where AVX-512 VNNI exists the 512-bit kernel is faster.
#include "kernels/cpu/int8/int8_vnni_ymm_impl.h"

namespace lutmul::kernels {
namespace {

struct EvexDot {
  static __m256i dpbusd(__m256i acc, __m256i u8, __m256i s8) { return _mm256_dpbusd_epi32(acc, u8, s8); }
};

}  // namespace

const Int8KernelTable* int8_vnni_ymm_evex_kernels() {
  static const Int8KernelTable table{int8_avx2_kernels()->quantize, gemm_vnni_ymm<EvexDot>,
                                     int8_avx2_kernels()->epilogue};
  return &table;
}

}  // namespace lutmul::kernels
