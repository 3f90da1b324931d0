// The panel product written once on xsimd batches and instantiated per ISA by
// kernels/cpu/isa/dense_*.cpp. A tile is up to kTileRows rows × one 16-column panel, its
// sums in registers: per k, the panel's 16 weights are loaded once and each row's x[k]
// broadcast into kTileRows · kVectors FMAs (6 × 2 ymm on AVX2, the register file's worth).
// Panels are the outer loop, so a panel read from memory serves every row while in L1.
#pragma once

#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/cpu/dense/panel_gemm.h"

namespace lutmul::kernels {
namespace {

template <class Arch>
struct PanelGemm {
  using B = xsimd::batch<float, Arch>;
  static constexpr int kLanes = static_cast<int>(B::size);
  static constexpr int kVectors = static_cast<int>(kPanelWidth) / kLanes;
  static constexpr int kTileRows = kVectors == 1 ? 8 : 6;

  template <int kRows>
  static void tile(const PanelGemmArgs& a, int64_t row0, int64_t panel) {
    const float* w = a.panels + panel * a.k * kPanelWidth;
    const float* x = a.x + row0 * a.ldx;
    B sum[kRows][kVectors];
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < kVectors; ++v) sum[r][v] = B(0.f);
    for (int64_t i = 0; i < a.k; ++i) {
      B weights[kVectors];
      for (int v = 0; v < kVectors; ++v) weights[v] = B::load_unaligned(w + i * kPanelWidth + v * kLanes);
      for (int r = 0; r < kRows; ++r) {
        const B xi(x[r * a.ldx + i]);
        for (int v = 0; v < kVectors; ++v) sum[r][v] = xsimd::fma(xi, weights[v], sum[r][v]);
      }
    }
    const int64_t j0 = panel * kPanelWidth;
    const int64_t columns = a.m - j0 < kPanelWidth ? a.m - j0 : kPanelWidth;
    alignas(64) float bias[kPanelWidth] = {};
    if (a.bias != nullptr)
      for (int64_t c = 0; c < columns; ++c) bias[c] = a.bias[j0 + c];
    for (int r = 0; r < kRows; ++r) {
      float* y = a.y + (row0 + r) * a.ldy + j0;
      for (int v = 0; v < kVectors; ++v) {
        const B out = sum[r][v] + B::load_aligned(bias + v * kLanes);
        if (columns == kPanelWidth) {
          out.store_unaligned(y + v * kLanes);
          continue;
        }
        alignas(64) float staged[kLanes];
        out.store_aligned(staged);
        for (int c = 0; c < kLanes && v * kLanes + c < columns; ++c) y[v * kLanes + c] = staged[c];
      }
    }
  }

  // The last rows, fewer than kTileRows: one tile of exactly that many.
  template <int kRows>
  static void tail(const PanelGemmArgs& a, int64_t row0, int64_t panel, int64_t rows) {
    if constexpr (kRows > 0) {
      if (rows == kRows) {
        tile<kRows>(a, row0, panel);
      } else {
        tail<kRows - 1>(a, row0, panel, rows);
      }
    }
  }

  static void run(const PanelGemmArgs& a, int64_t panel_begin, int64_t panel_end) {
    for (int64_t p = panel_begin; p < panel_end; ++p) {
      int64_t r = 0;
      for (; r + kTileRows <= a.rows; r += kTileRows) tile<kTileRows>(a, r, p);
      tail<kTileRows - 1>(a, r, p, a.rows - r);
    }
  }
};

}  // namespace
}  // namespace lutmul::kernels
