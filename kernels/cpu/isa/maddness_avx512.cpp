// Instantiates the encoder and the scan for avx512; this file alone is built with its flags.
#include "kernels/cpu/isa/simd_avx512.h"
#include "kernels/cpu/maddness/encode_impl.h"
#include "kernels/cpu/maddness/encode_wide_impl.h"
#include "kernels/cpu/maddness/scan_impl.h"
#include "kernels/cpu/maddness/scan_wide_impl.h"

namespace lutmul::kernels {

const KernelTable* avx512_kernels() {
  static const KernelTable table{encode_blocks<Avx512Ops>, scan_blocks<Avx512Ops>, encode_wide_blocks<Avx512Ops>, scan_wide_blocks<Avx512Ops>};
  return &table;
}

}  // namespace lutmul::kernels
