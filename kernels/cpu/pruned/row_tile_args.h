// Internal: what every row-tile kernel (the pruned products, which put rows of X in vector
// lanes) takes besides its weights. Checked by the caller.
#pragma once

#include <cstdint>

namespace lutmul::kernels {

struct RowTileArgs {
  const float* x = nullptr;  // rows of X, row-major, leading dimension ldx
  int64_t ldx = 0;
  const float* bias = nullptr;  // M
  float* y = nullptr;           // rows of Y, leading dimension ldy
  int64_t ldy = 0;
  float* scratch = nullptr;  // 64-byte aligned, as many floats as the family's *_scratch_floats
};

}  // namespace lutmul::kernels
