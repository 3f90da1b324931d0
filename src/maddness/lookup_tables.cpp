#include "maddness/lookup_tables.h"

#include <algorithm>
#include <cmath>

#include "core/sgemm.h"
#include "lutmul/core/threading.h"

namespace lutmul::detail {

LookupTables build_lookup_tables(const std::vector<float>& prototypes, int ncodebooks, int leaves, int64_t dim,
                                 const MatrixView& weights) {
  const int kLeaves = leaves;
  const int64_t k = int64_t{ncodebooks} * kLeaves, m = weights.cols;
  // Bytes per output: 16-leaf tables come in codebook pairs (a phantom zero table for odd C).
  const int64_t table_bytes = leaves == 16 ? int64_t{(ncodebooks + 1) / 2} * 32 : k;

  // dots = P (K × D) · B (D × M), row-major K × M.
  std::vector<float> dots(static_cast<size_t>(k * m));
  const bool row_major = weights.layout == Layout::row_major;
  sgemm(false, !row_major, k, m, dim, prototypes.data(), dim, weights.data, weights.leading_dim(), 0.f, dots.data(), m,
        num_threads());

  LookupTables t;
  t.float_tables.resize(static_cast<size_t>(m * k));
  for (int64_t row = 0; row < k; ++row)
    for (int64_t j = 0; j < m; ++j) t.float_tables[j * k + row] = dots[row * m + j];

  t.scales.assign(static_cast<size_t>(m), 1.f);
  t.offsets.assign(static_cast<size_t>(m), 0.0);
  t.quantized_tables.assign(static_cast<size_t>(m * table_bytes), 0);
  std::vector<float> lowest(static_cast<size_t>(ncodebooks));
  for (int64_t j = 0; j < m; ++j) {
    const float* tables = t.float_tables.data() + j * k;  // C × 16
    float widest = 0.f;
    double offset = 0;
    for (int c = 0; c < ncodebooks; ++c) {
      const float* table = tables + c * kLeaves;
      const float lo = *std::min_element(table, table + kLeaves), hi = *std::max_element(table, table + kLeaves);
      lowest[c] = lo;
      offset += lo;
      widest = std::max(widest, hi - lo);
    }
    // A range too narrow for a finite scale quantises to zeros at scale 1.
    const float scale = widest > 0.f && std::isfinite(255.f / widest) ? 255.f / widest : 1.f;
    t.scales[j] = scale;
    t.offsets[j] = offset;
    for (int c = 0; c < ncodebooks; ++c)
      for (int leaf = 0; leaf < kLeaves; ++leaf) {
        const float v = (tables[c * kLeaves + leaf] - lowest[c]) * scale;
        const float q = std::min(255.f, std::max(0.f, std::nearbyint(v)));
        t.quantized_tables[j * table_bytes + c * kLeaves + leaf] = static_cast<uint8_t>(q);
      }
  }
  return t;
}

}  // namespace lutmul::detail
