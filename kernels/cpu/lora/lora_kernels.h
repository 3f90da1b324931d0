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
  const float* b = nullptr;  // B (r × M) in panels of 16 outputs, lora_b_panel_floats(r, M) floats:
                             // b[(j / 16)·16r + s·16 + j % 16] = B[s][j], zero past M
  float scale = 0.f;         // alpha / r
  float* y = nullptr;        // row-major, leading dimension ldy; the term is added in place
  int64_t ldy = 0;
  float* scratch = nullptr;  // lora_scratch_floats(r) floats
};

// For each row i in rows[0, count):
//   t[s] = scale·fma(x[i][K−1], a[K−1][s], … fma(x[i][0], a[0][s], 0))   (k ascending, then one multiply)
//   y[i][j] = fma(t[r−1], B[r−1][j], … fma(t[0], B[0][j], y[i][j]))      (s ascending, onto y)
// Every kernel rounds exactly so. Returns false if any t was not finite (a NaN or infinity in
// one of the rows of X, or an overflow): X·A is r values per row, far cheaper to check than X.
using LoraFn = bool (*)(const LoraArgs&, const int64_t* rows, int64_t count);

constexpr int kLoraTileRows = 8;  // rows that share each load of A and B
inline int64_t lora_scratch_floats(int64_t r) { return kLoraTileRows * r; }
// B's rows are 4 KB apart at M = 1024, so the 16 rows one output block reads all fall into
// one L1 set and evict each other; panels make each block's r·16 values contiguous.
constexpr int64_t kLoraPanel = 16;
inline int64_t lora_b_panel_floats(int64_t r, int64_t m) { return (m + kLoraPanel - 1) / kLoraPanel * kLoraPanel * r; }

LoraFn lora_scalar_kernel();
LoraFn lora_avx2_kernel();    // nullptr if not built
LoraFn lora_avx512_kernel();  // nullptr if not built

}  // namespace lutmul::kernels
