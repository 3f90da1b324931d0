// Instantiates the encoder and the scan for avx2; this file alone is built with its flags.
#include "kernels/cpu/isa/simd_avx2.h"
#include "kernels/cpu/maddness/encode_impl.h"
#include "kernels/cpu/maddness/encode_wide_impl.h"
#include "kernels/cpu/maddness/scan_impl.h"
#include "kernels/cpu/maddness/scan_wide_impl.h"

namespace lutmul::kernels {

const KernelTable* avx2_kernels() {
  static const KernelTable table{encode_blocks<Avx2Ops>, scan_blocks<Avx2Ops>, encode_wide_blocks<Avx2Ops>, scan_wide_blocks<Avx2Ops>};
  return &table;
}

}  // namespace lutmul::kernels
