// Internal interface of the LoRA adapter-term kernels (the "shrink then expand" of Punica's
// SGMV, on the CPU): for a segment of rows that share one adapter, the rows are gathered
// through their indices, never copied, and each tile of rows reads A and B once.
// Checked by the caller; no throwing, no allocation.
#pragma once

#include <cstdint>

namespace lutmul::kernels {

struct LoraArgs {
  const float* x = nullptr;  // row-major rows of X, leading dimension ldx
  int64_t ldx = 0;
  int64_t k = 0, m = 0, r = 0;
  const float* a = nullptr;  // K × r, row-major
  const float* b = nullptr;  // r × M, row-major
  float scale = 0.f;         // alpha / r
  float* y = nullptr;        // row-major, leading dimension ldy; the term is added in place
  int64_t ldy = 0;
  float* scratch = nullptr;  // lora_scratch_floats(r) floats
};

// For each row i in rows[0, count):
//   t[s] = fma(x[i][K−1], a[K−1][s], … fma(x[i][0], a[0][s], 0))      (k ascending)
//   u[j] = fma(t[r−1], b[r−1][j], … fma(t[0], b[0][j], 0))            (s ascending)
//   y[i][j] = y[i][j] + scale·u[j]                                     (a multiply, then an add)
// Every kernel rounds exactly so.
using LoraFn = void (*)(const LoraArgs&, const int64_t* rows, int64_t count);

constexpr int64_t kLoraTileRows = 8;  // rows that share each load of A and B
inline int64_t lora_scratch_floats(int64_t r) { return kLoraTileRows * r; }

LoraFn lora_scalar_kernel();
LoraFn lora_avx512_kernel();  // nullptr if not built

}  // namespace lutmul::kernels
