// The scalar reference of the int8 operator: plain loops that define what every kernel must
// produce, bit for bit.
#include <cmath>

#include "kernels/cpu/int8/int8_kernels.h"

namespace lutmul::kernels {
namespace {

bool quantize_reference(const Int8QuantizeArgs& args, int64_t row_begin, int64_t row_end) {
  bool finite = true;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* row = args.x + r * args.ldx;
    // x_k / s[k] where smoothed: one rounding, before anything else.
    auto x = [&](int64_t k) { return args.column_inverse ? row[k] * args.column_inverse[k] : row[k]; };
    float inverse = args.static_inverse, scale = args.static_scale;
    float largest = 0.f;
    for (int64_t k = 0; k < args.k; ++k) {
      finite &= std::isfinite(x(k));
      largest = std::fabs(x(k)) > largest ? std::fabs(x(k)) : largest;
    }
    if (args.dynamic) {
      // An all-zero row quantizes to zeros whatever the scale.
      inverse = largest > 0.f ? 127.f / largest : 1.f;
      scale = largest > 0.f ? largest / 127.f : 1.f;
    }
    uint8_t* out = args.out + (r - row_begin) * args.k_padded;
    for (int64_t k = 0; k < args.k_padded; ++k) {
      float q = k < args.k ? std::nearbyint(x(k) * inverse) : 0.f;
      if (std::isnan(q)) q = 0.f;  // the caller rejects such rows; keep the cast defined
      q = q > 127.f ? 127.f : (q < -127.f ? -127.f : q);
      out[k] = static_cast<uint8_t>(static_cast<int>(q) + 128);
    }
    args.scales[r - row_begin] = scale;
  }
  return finite;
}

void gemm_reference(const Int8GemmArgs& args, int64_t row_begin, int64_t row_end, int64_t tile_begin,
                    int64_t tile_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* x = args.x + r * args.k_padded;
    for (int64_t m = tile_begin * kInt8TileOutputs; m < tile_end * kInt8TileOutputs && m < args.m; ++m) {
      const int64_t tile = m / kInt8TileOutputs, lane = m % kInt8TileOutputs;
      int32_t sum = 0;
      for (int64_t k = 0; k < args.k_padded; ++k) {
        const int8_t w = args.packed[((k / kInt8KGroup) * args.tiles + tile) * 64 + lane * 4 + k % kInt8KGroup];
        sum += (static_cast<int32_t>(x[k]) - 128) * w;
      }
      // Two roundings (scale, then bias), never fused: the kernels do the same.
      const float scale = args.row_scales[r] * args.weight_scales[m];
      const float scaled = static_cast<float>(sum) * scale;
      args.y[r * args.ldy + m] = scaled + args.bias[m];
    }
  }
}

void epilogue_reference(const Int8EpilogueArgs& args, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t m = 0; m < args.m; ++m) {
      const int32_t sum = args.sums[r * args.m + m] - 128 * args.column_sums[m];
      const float scale = args.row_scales[r] * args.weight_scales[m];
      const float scaled = static_cast<float>(sum) * scale;
      args.y[r * args.ldy + m] = scaled + args.bias[m];
    }
}

}  // namespace

const Int8KernelTable& int8_scalar_kernels() {
  static const Int8KernelTable table{quantize_reference, gemm_reference, epilogue_reference};
  return table;
}

}  // namespace lutmul::kernels
