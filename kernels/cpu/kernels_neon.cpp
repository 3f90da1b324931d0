// Instantiates the encoder and the scan for neon; this file alone is built with its flags.
#include "kernels/cpu/simd_neon.h"
#include "kernels/cpu/encode_impl.h"
#include "kernels/cpu/scan_impl.h"

namespace lutmul::kernels {

const KernelTable* neon_kernels() {
  static const KernelTable table{encode_blocks<NeonOps>, scan_blocks<NeonOps>};
  return &table;
}

}  // namespace lutmul::kernels
