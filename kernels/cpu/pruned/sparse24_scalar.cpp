// The scalar reference of the 2:4 product: explicit fused multiply-adds, in the order every
// kernel uses.
#include <cmath>

#include "kernels/cpu/pruned/sparse24_kernels.h"

namespace lutmul::kernels {
namespace {

void sparse24_reference(const Sparse24Args& args, int64_t row_begin, int64_t row_end) {
  const Sparse24Layout& layout = args.layout;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* x = args.x + r * args.ldx;
    for (int64_t m = 0; m < layout.m; ++m) {
      float acc = 0.f;
      for (int64_t block = 0; block < layout.blocks(); ++block) {
        const float* values = args.values + layout.value_offset(block, m);
        const uint8_t* codes = args.codes + layout.code_offset(block, m);
        const float* xb = x + 4 * block * kSparse24BlockGroups;
        for (int64_t g = 0; g < layout.count(block); ++g) {
          const int code = sparse24_code(codes, g);
          acc = std::fma(xb[4 * g + (code & 3)], values[2 * g], acc);
          acc = std::fma(xb[4 * g + (code >> 2)], values[2 * g + 1], acc);
        }
      }
      args.y[r * args.ldy + m] = acc + args.bias[m];
    }
  }
}

}  // namespace

Sparse24Fn sparse24_scalar_kernel() { return sparse24_reference; }

}  // namespace lutmul::kernels
