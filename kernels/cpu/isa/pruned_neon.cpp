// Instantiates the pruned products (unstructured and 2:4) for neon; this file alone is built
// with its flags.
#include "kernels/cpu/isa/simd_neon.h"
#include "kernels/cpu/pruned/sparse24_impl.h"
#include "kernels/cpu/pruned/sparse_impl.h"

namespace lutmul::kernels {

SparseFn sparse_neon_kernel() { return sparse_rows<NeonOps>; }
Sparse24Fn sparse24_neon_kernel() { return sparse24_rows<NeonOps>; }

}  // namespace lutmul::kernels
