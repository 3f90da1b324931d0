// Internal interface of the sparse (pruned) product kernels. Checked by the caller; no
// throwing, no allocation.
#pragma once

#include <cstdint>

namespace lutmul::kernels {

struct SparseArgs {
  const float* x = nullptr;  // row-major, leading dimension ldx
  int64_t ldx = 0;
  int64_t k = 0;
  int64_t m = 0;
  const int64_t* column_start = nullptr;  // M + 1
  const int32_t* rows = nullptr;          // input index per kept weight
  const float* values = nullptr;
  const float* bias = nullptr;  // M
  float* y = nullptr;
  int64_t ldy = 0;
  // Scratch of sparse_scratch_floats(k) floats (the transposed row tile).
  float* scratch = nullptr;
};

// y[r][m] = fma(x[r][k_last], w_last, ... fma(x[r][k_first], w_first, 0)) + bias[m], the
// kept weights of column m in ascending k: every kernel rounds exactly so.
using SparseFn = void (*)(const SparseArgs&, int64_t row_begin, int64_t row_end);

static inline int64_t sparse_scratch_floats(int64_t k) { return 32 * k; }

SparseFn sparse_scalar_kernel();
SparseFn sparse_avx512_kernel();  // nullptr if not built

}  // namespace lutmul::kernels
