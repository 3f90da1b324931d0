// Internal: lookup tables from prototypes and weights.
#pragma once

#include <cstdint>
#include <vector>

#include "lutmul/core/cache_line_bytes.h"
#include "lutmul/core/matrix.h"

namespace lutmul::detail {

struct LookupTables {
  std::vector<float> float_tables;        // M × C × K
  CacheLineBytes quantized_tables;  // K = 16: M × ceil(C/2) × 32; K = 64: M × C × 64
  // q[m][c][k] = round((T[m][c][k] − min_k T[m][c][k]) · scales[m]).
  std::vector<float> scales;   // M
  std::vector<double> offsets;  // M: Σ_c min_k T[m][c][k]
};

// T[m][c][k] = ⟨prototype(c, k), B[:, m]⟩ through one SGEMM, then 8-bit quantisation: each
// output's table for each codebook starts at its own minimum, and each output has its own
// scale, the widest of its codebooks' ranges mapped to 0..255 (one scale per output keeps
// its integer sum over codebooks meaningful). A single scale and per-codebook offsets for all
// outputs cost MiniLM's first feed-forward layer a relative error of 0.35 against 0.27 with
// float tables at C = 64; this gets 0.27.
LookupTables build_lookup_tables(const std::vector<float>& prototypes, int ncodebooks, int leaves, int64_t dim,
                                 const MatrixView& weights);

}  // namespace lutmul::detail
