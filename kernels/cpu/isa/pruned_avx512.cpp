// Instantiates the pruned products (unstructured and 2:4) for avx512; this file alone is built
// with its flags.
#include "kernels/cpu/isa/simd_avx512.h"
#include "kernels/cpu/pruned/sparse24_impl.h"
#include "kernels/cpu/pruned/sparse_impl.h"

namespace lutmul::kernels {

SparseFn sparse_avx512_kernel() { return sparse_rows<Avx512Ops>; }
Sparse24Fn sparse24_avx512_kernel() { return sparse24_rows<Avx512Ops>; }

}  // namespace lutmul::kernels
