// The scalar reference of the adapter term: explicit fused multiply-adds in the order every
// kernel uses, one row at a time.
#include <cmath>

#include "kernels/cpu/lora/lora_kernels.h"

namespace lutmul::kernels {
namespace {

bool lora_reference(const LoraArgs& args, const int64_t* rows, int64_t count) {
  float* t = args.scratch;
  bool finite = true;
  for (int64_t i = 0; i < count; ++i) {
    const float* x = args.x + rows[i] * args.ldx;
    float* y = args.y + rows[i] * args.ldy;
    for (int64_t s = 0; s < args.r; ++s) {
      float acc = 0.f;
      for (int64_t k = 0; k < args.k; ++k) acc = std::fma(x[k], args.a[k * args.r + s], acc);
      t[s] = args.scale * acc;
      finite = finite && std::isfinite(t[s]);
    }
    for (int64_t j = 0; j < args.m; ++j) {
      float acc = y[j];
      const float* panel = args.b + j / kLoraPanel * kLoraPanel * args.r + j % kLoraPanel;
      for (int64_t s = 0; s < args.r; ++s) acc = std::fma(t[s], panel[s * kLoraPanel], acc);
      y[j] = acc;
    }
  }
  return finite;
}

}  // namespace

LoraFn lora_scalar_kernel() { return lora_reference; }

}  // namespace lutmul::kernels
