// Instantiates the pruned products (unstructured and 2:4) for avx2; this file alone is built
// with its flags.
#include "kernels/cpu/isa/simd_avx2.h"
#include "kernels/cpu/pruned/sparse24_impl.h"
#include "kernels/cpu/pruned/sparse_impl.h"

namespace lutmul::kernels {

SparseFn sparse_avx2_kernel() { return sparse_rows<Avx2Ops>; }
Sparse24Fn sparse24_avx2_kernel() { return sparse24_rows<Avx2Ops>; }

}  // namespace lutmul::kernels
