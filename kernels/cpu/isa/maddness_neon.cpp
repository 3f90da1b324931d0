// Instantiates the encoder and the scan for neon; this file alone is built with its flags.
#include "kernels/cpu/isa/simd_neon.h"
#include "kernels/cpu/maddness/encode_impl.h"
#include "kernels/cpu/maddness/encode_wide_impl.h"
#include "kernels/cpu/maddness/scan_impl.h"
#include "kernels/cpu/maddness/scan_wide_impl.h"

namespace lutmul::kernels {

const KernelTable* neon_kernels() {
  static const KernelTable table{encode_blocks<NeonOps>, scan_blocks<NeonOps>, encode_wide_blocks<NeonOps>, scan_wide_blocks<NeonOps>};
  return &table;
}

}  // namespace lutmul::kernels
