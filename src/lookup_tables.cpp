#include "lookup_tables.h"

#include <algorithm>
#include <cmath>

#include "blas.h"

namespace lutmul::detail {

LookupTables build_lookup_tables(const std::vector<float>& prototypes, int ncodebooks, int64_t dim,
                                 const MatrixView& weights) {
  constexpr int kLeaves = 16;
  const int64_t k = int64_t{ncodebooks} * kLeaves, m = weights.cols;
  const int npairs = (ncodebooks + 1) / 2;

  // dots = P (K × D) · B (D × M), row-major K × M.
  std::vector<float> dots(static_cast<size_t>(k * m));
  const bool row_major = weights.layout == Layout::row_major;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, row_major ? CblasNoTrans : CblasTrans, static_cast<int>(k),
              static_cast<int>(m), static_cast<int>(dim), 1.f, prototypes.data(), static_cast<int>(dim), weights.data,
              static_cast<int>(weights.leading_dim()), 0.f, dots.data(), static_cast<int>(m));

  LookupTables t;
  t.float_tables.resize(static_cast<size_t>(m * k));
  for (int64_t row = 0; row < k; ++row)
    for (int64_t j = 0; j < m; ++j) t.float_tables[j * k + row] = dots[row * m + j];

  t.offsets.assign(static_cast<size_t>(ncodebooks), 0.f);
  float widest = 0.f;
  for (int c = 0; c < ncodebooks; ++c) {
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t j = 0; j < m; ++j)
      for (int leaf = 0; leaf < kLeaves; ++leaf) {
        const float v = t.float_tables[(j * ncodebooks + c) * kLeaves + leaf];
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    t.offsets[c] = lo;
    widest = std::max(widest, hi - lo);
  }
  t.scale = widest > 0.f ? 255.f / widest : 1.f;

  t.quantized_tables.assign(static_cast<size_t>(m * npairs * 32), 0);
  for (int64_t j = 0; j < m; ++j)
    for (int c = 0; c < ncodebooks; ++c)
      for (int leaf = 0; leaf < kLeaves; ++leaf) {
        const float v = (t.float_tables[(j * ncodebooks + c) * kLeaves + leaf] - t.offsets[c]) * t.scale;
        const float q = std::min(255.f, std::max(0.f, std::nearbyint(v)));
        t.quantized_tables[(j * npairs + c / 2) * 32 + (c % 2) * 16 + leaf] = static_cast<uint8_t>(q);
      }
  return t;
}

}  // namespace lutmul::detail
