// The scalar reference of the pruned product: explicit fused multiply-adds, in the order
// every kernel uses.
#include <cmath>

#include "kernels/cpu/pruned/sparse_kernels.h"

namespace lutmul::kernels {
namespace {

void sparse_reference(const SparseArgs& args, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* x = args.x + r * args.ldx;
    for (int64_t m = 0; m < args.m; ++m) {
      float acc = 0.f;
      for (int64_t b = 0; b < args.blocks; ++b) {
        const int64_t segment = b * args.m + m;
        for (int64_t i = args.segment_start[segment]; i < args.segment_start[segment + 1]; ++i)
          acc = std::fma(x[b * kSparseBlockK + args.offsets[i]], args.values[i], acc);
      }
      args.y[r * args.ldy + m] = acc + args.bias[m];
    }
  }
}

}  // namespace

SparseFn sparse_scalar_kernel() { return sparse_reference; }

}  // namespace lutmul::kernels
