// Internal: lookup tables from prototypes and weights.
#pragma once

#include <cstdint>
#include <vector>

#include "lutmul/matrix.h"

namespace lutmul::detail {

struct LookupTables {
  std::vector<float> float_tables;        // M × C × 16
  std::vector<uint8_t> quantized_tables;  // M × ceil(C/2) × 32
  float scale = 1.f;                      // q = round((T − offset_c) · scale)
  std::vector<float> offsets;             // C
};

// T[m][c][k] = ⟨prototype(c, k), B[:, m]⟩ through one SGEMM, then 8-bit quantisation with a
// per-codebook offset and one scale shared by all codebooks (integer sums stay comparable).
LookupTables build_lookup_tables(const std::vector<float>& prototypes, int ncodebooks, int64_t dim,
                                 const MatrixView& weights);

}  // namespace lutmul::detail
