// The panel product written once on xsimd batches and instantiated per ISA by
// kernels/cpu/isa/dense_*.cpp. A tile is up to kTileRows rows × one 16-column panel, its
// sums in registers: per k, the panel's 16 weights are loaded once and each row's x[k]
// broadcast into kTileRows · kVectors FMAs (6 × 2 ymm on AVX2, the register file's worth).
// Panels are the outer loop of whole tiles, so a panel read from memory serves those rows
// while in cache. The weights come as float panels or as bfloat16 ones widened in registers
// (Weights: FloatPanels, Bf16Panels).
#pragma once

#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/cpu/dense/panel_gemm.h"
#include "kernels/cpu/runtime/vector_math.h"

namespace lutmul::kernels {
namespace {

// A panel row's 16 weights as kVectors vectors: float panels, loaded as they are ...
template <class Arch>
struct FloatPanels {
  using B = xsimd::batch<float, Arch>;
  using Element = float;
  static constexpr int kVectors = static_cast<int>(kPanelWidth / B::size);
  static const float* panels(const PanelGemmArgs& a) { return a.panels; }
  static void load(const float* row, B (&out)[kVectors]) {
    for (int v = 0; v < kVectors; ++v) out[v] = B::load_unaligned(row + v * static_cast<int>(B::size));
  }
};

// ... or bfloat16 panels in pair order (pack_bf16_panels): one load, a shift and a mask.
template <class Arch>
struct Bf16Panels {
  using B = xsimd::batch<float, Arch>;
  using Pairs = xsimd::batch<uint32_t, Arch>;
  using Element = uint16_t;
  static_assert(B::size == 8, "pair order fills two vectors of 8 floats");
  static constexpr int kVectors = 2;
  static const uint16_t* panels(const PanelGemmArgs& a) { return a.bf16_panels; }
  static void load(const uint16_t* row, B (&out)[kVectors]) {
    const Pairs pairs = Pairs::load_unaligned(reinterpret_cast<const uint32_t*>(row));
    out[0] = xsimd::bitwise_cast<B>(pairs << 16);
    out[1] = xsimd::bitwise_cast<B>(pairs & Pairs(0xffff0000u));
  }
};

template <class Arch, class Weights = FloatPanels<Arch>>
struct PanelGemm {
  using B = xsimd::batch<float, Arch>;
  using W = typename Weights::Element;
  static constexpr int kLanes = static_cast<int>(B::size);
  static constexpr int kVectors = Weights::kVectors;
  static constexpr int kTileRows = kVectors == 1 ? 8 : 6;
  static constexpr int64_t kRowsPerLine = 64 / (kPanelWidth * static_cast<int64_t>(sizeof(W)));  // panel rows in a cache line

  // How a tile fetches the next panel into cache along the way: not at all, every line of it,
  // or its share: the lines whose index is `phase` modulo `period` (the `period` tiles of a
  // panel each take one phase).
  enum class Fetch { none, every_line, share };

  // Rows [row0, row0 + kRows) × panels [panel0, panel0 + kPanels).
  template <int kRows, int kPanels, Fetch kFetch = Fetch::none>
  static void tile(const PanelGemmArgs& a, int64_t row0, int64_t panel0, int phase = 0, int period = 1) {
    const W* w = Weights::panels(a) + panel0 * a.k * kPanelWidth;
    const int64_t panel_size = a.k * kPanelWidth;
    const float* x = a.x + row0 * a.ldx;
    B sum[kPanels][kRows][kVectors];
    for (int p = 0; p < kPanels; ++p)
      for (int r = 0; r < kRows; ++r)
        for (int v = 0; v < kVectors; ++v) sum[p][r][v] = B(0.f);
    int countdown = phase + 1;  // lines until this tile's next one (Fetch::share)
    for (int64_t i = 0; i < a.k; ++i) {
      if constexpr (kFetch == Fetch::every_line) {
        if (i % kRowsPerLine == 0) __builtin_prefetch(w + kPanels * panel_size + i * kPanelWidth);
      } else if constexpr (kFetch == Fetch::share) {
        if (i % kRowsPerLine == 0 && --countdown == 0) {
          __builtin_prefetch(w + kPanels * panel_size + i * kPanelWidth);
          countdown = period;
        }
      }
      B weights[kPanels][kVectors];
      for (int p = 0; p < kPanels; ++p) Weights::load(w + p * panel_size + i * kPanelWidth, weights[p]);
      for (int r = 0; r < kRows; ++r) {
        const B xi(x[r * a.ldx + i]);
        for (int p = 0; p < kPanels; ++p)
          for (int v = 0; v < kVectors; ++v) sum[p][r][v] = fmadd(xi, weights[p][v], sum[p][r][v]);  // xsimd::fma is no FMA on AVX-512
      }
    }
    for (int p = 0; p < kPanels; ++p) store<kRows>(a, row0, panel0 + p, sum[p]);
  }

  template <int kRows>
  static void store(const PanelGemmArgs& a, int64_t row0, int64_t panel, const B (&sum)[kRows][kVectors]) {
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

  // The last rows, fewer than kTileRows, over panels [begin, end). A few rows alone leave too
  // few independent sums to hide the FMA latency (one row: kVectors chains), so they take
  // panels two or four at a time: at least 8 sums in flight.
  template <int kRows>
  static void last_rows(const PanelGemmArgs& a, int64_t row0, int64_t rows, int64_t begin, int64_t end) {
    if constexpr (kRows > 0) {
      if (rows != kRows) return last_rows<kRows - 1>(a, row0, rows, begin, end);
      constexpr int kPanels = kRows * kVectors >= 8 ? 1 : (8 + kRows * kVectors - 1) / (kRows * kVectors) > 4 ? 4 : (8 + kRows * kVectors - 1) / (kRows * kVectors);
      int64_t p = begin;
      for (; p + kPanels <= end; p += kPanels) tile<kRows, kPanels>(a, row0, p);
      for (; p < end; ++p) tile<kRows, 1>(a, row0, p);
    }
  }

  // Rows in chunks whose X fits in a quarter of a 512 KiB L2: each panel is read once per chunk
  // and the chunk's rows from cache (panel by panel over all of a large X, X would stream
  // from memory once per panel). A chunk's rows are split into tiles of nearly equal size, all
  // run over each panel while it is in cache (16 rows: 6 + 5 + 5, not 6 + 6 and then a sweep
  // of 4 rows over all of W again), as long as each tile keeps 8 sums to hide the FMA latency;
  // otherwise the last rows take panels two or four at a time after the chunk.
  // A panel's first tile reads it from where the model's weights are (memory: MiniLM's are
  // 42 MB) faster than one core's share of the bandwidth gives them, so the next panel is
  // fetched meanwhile. A product of one chunk and up to 3 tiles (a sentence's rows) reads each
  // panel once: its tiles share the fetch, so that none of them waits on the bandwidth for all
  // of it. With more tiles or chunks (W back from L3), the first tile reads and the others each
  // fetch every line, which measured faster there (docs/experiments.md, "Zen 3, tenth
  // session"). The order changes no bits: each output is its own chain.
  static constexpr int kMinTileRows = (8 + kVectors - 1) / kVectors;

  static void run(const PanelGemmArgs& a, int64_t panel_begin, int64_t panel_end) {
    const int64_t fit = (32 * 1024 / (a.k > 0 ? a.k : 1)) / kTileRows * kTileRows;
    const int64_t chunk = fit > kTileRows ? fit : kTileRows;
    for (int64_t row0 = 0; row0 < a.rows; row0 += chunk) {
      const int64_t rows = a.rows - row0 < chunk ? a.rows - row0 : chunk;
      int64_t tiles = (rows + kTileRows - 1) / kTileRows;
      const bool balanced = rows / tiles >= kMinTileRows;
      if (!balanced) tiles = rows / kTileRows;
      const int64_t size = balanced ? rows / tiles : kTileRows, larger = balanced ? rows % tiles : 0;
      const bool share = a.rows <= chunk && tiles <= 3;
      for (int64_t p = panel_begin; p < panel_end; ++p) {
        const bool last_panel = p + 1 == panel_end;
        int64_t r = row0;
        for (int64_t t = 0; t < tiles; ++t) {
          const int64_t n = size + (t < larger ? 1 : 0);
          const Fetch fetch = last_panel ? Fetch::none
                              : share    ? Fetch::share
                              : t > 0 || tiles == 1 ? Fetch::every_line : Fetch::none;
          panel_tile<kTileRows>(a, r, n, p, fetch, static_cast<int>(t), static_cast<int>(tiles));
          r += n;
        }
      }
      const int64_t covered = balanced ? rows : tiles * kTileRows;
      last_rows<kTileRows - 1>(a, row0 + covered, rows - covered, panel_begin, panel_end);
    }
  }

  // One tile of `rows` rows (kMinTileRows to kTileRows) over panel p.
  template <int kRows>
  static void panel_tile(const PanelGemmArgs& a, int64_t row0, int64_t rows, int64_t p, Fetch fetch, int phase,
                         int period) {
    if constexpr (kRows >= kMinTileRows) {
      if (rows != kRows) return panel_tile<kRows - 1>(a, row0, rows, p, fetch, phase, period);
      switch (fetch) {
        case Fetch::none: return tile<kRows, 1>(a, row0, p);
        case Fetch::every_line: return tile<kRows, 1, Fetch::every_line>(a, row0, p);
        case Fetch::share: return tile<kRows, 1, Fetch::share>(a, row0, p, phase, period);
      }
    }
  }
};

}  // namespace
}  // namespace lutmul::kernels
