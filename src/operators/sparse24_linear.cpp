#include "lutmul/operators/sparse24_linear.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/aligned_scratch.h"
#include "core/file_format.h"
#include "core/finite.h"
#include "core/kernel_registry.h"
#include "lutmul/core/error.h"
#include "lutmul/core/isa.h"
#include "lutmul/core/threading.h"
#include "operators/operator_skeleton.h"
#include "operators/pruning_scores.h"

namespace lutmul {

Sparse24Linear::Sparse24Linear(const MatrixView& W, const float* bias, const MatrixView* calibration)
    : SizedLinearOperator("sparse24") {
  detail::check_weights(W, "Sparse24Linear");
  LUTMUL_CHECK(W.rows % 4 == 0, "Sparse24Linear: 2:4 pruning needs K divisible by 4, got K = ", W.rows);
  groups_ = W.rows / 4;
  k_ = W.rows;
  m_ = W.cols;

  const std::vector<double> scores = detail::pruning_scores(W, calibration, "Sparse24Linear");

  const kernels::Sparse24Layout layout{groups_, m_};
  values_.assign(static_cast<size_t>(layout.value_count()), 0.f);
  codes_.assign(static_cast<size_t>(layout.code_count()), 0);
  for (int64_t block = 0; block < layout.blocks(); ++block)
    for (int64_t m = 0; m < m_; ++m) {
      float* values = values_.data() + layout.value_offset(block, m);
      uint8_t* codes = codes_.data() + layout.code_offset(block, m);
      for (int64_t g = 0; g < layout.count(block); ++g) {
        const int64_t k0 = 4 * (block * kernels::kSparse24BlockGroups + g);
        double score[4];
        for (int j = 0; j < 4; ++j) score[j] = scores[(k0 + j) * m_ + m];
        // The best two positions, the lower input winning ties, then stored in ascending order.
        int best = 0;
        for (int j = 1; j < 4; ++j)
          if (score[j] > score[best]) best = j;
        int second = best == 0 ? 1 : 0;
        for (int j = 0; j < 4; ++j)
          if (j != best && score[j] > score[second]) second = j;
        const int low = std::min(best, second), high = std::max(best, second);
        values[2 * g] = W.at(k0 + low, m);
        values[2 * g + 1] = W.at(k0 + high, m);
        codes[g / 2] = static_cast<uint8_t>(codes[g / 2] | (low | high << 2) << (4 * (g % 2)));
      }
    }
  bias_ = detail::copy_bias(bias, m_, "Sparse24Linear");
}

std::vector<float> Sparse24Linear::pruned_dense() const {
  const kernels::Sparse24Layout layout{groups_, m_};
  std::vector<float> w(static_cast<size_t>(4 * groups_ * m_), 0.f);
  for (int64_t block = 0; block < layout.blocks(); ++block)
    for (int64_t m = 0; m < m_; ++m) {
      const float* values = values_.data() + layout.value_offset(block, m);
      const uint8_t* codes = codes_.data() + layout.code_offset(block, m);
      for (int64_t g = 0; g < layout.count(block); ++g) {
        const int64_t k0 = 4 * (block * kernels::kSparse24BlockGroups + g);
        const int code = kernels::sparse24_code(codes, g);
        w[(k0 + (code & 3)) * m_ + m] = values[2 * g];
        w[(k0 + (code >> 2)) * m_ + m] = values[2 * g + 1];
      }
    }
  return w;
}

int64_t Sparse24Linear::bytes() const {
  return static_cast<int64_t>(values_.size() * sizeof(float) + codes_.size() + bias_.size() * sizeof(float));
}


void Sparse24Linear::run(const MatrixView& X, float* Y, int64_t ldy, bool reference) const {
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  kernels::Sparse24Args args;
  args.layout = kernels::Sparse24Layout{groups_, m_};
  args.values = values_.data();
  args.codes = codes_.data();
  args.bias = bias_.data();
  const bool finite = detail::run_row_tiles(
      X, Y, ldy, kernels::kSparse24TileRows, static_cast<size_t>(kernels::sparse24_scratch_floats(args.layout)), args,
      (reference ? detail::reference_kernels() : detail::active_kernels()).sparse24);
  LUTMUL_CHECK(finite, "2:4 sparse forward: X has a non-finite value (", X.rows, " x ", X.cols, " input)");
}

void Sparse24Linear::compute(const MatrixView& X, float* Y, int64_t ldy) const { run(X, Y, ldy, false); }
void Sparse24Linear::forward_reference(const MatrixView& X, float* Y, int64_t ldy) const { run(X, Y, ldy, true); }

std::vector<uint8_t> Sparse24Linear::payload() const {
  return detail::pack(groups_, m_, values_, codes_, bias_);
}

std::unique_ptr<Sparse24Linear> Sparse24Linear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  std::unique_ptr<Sparse24Linear> op(new Sparse24Linear());
  op->groups_ = r.get<int64_t>("groups");
  op->m_ = r.get<int64_t>("M");
  LUTMUL_CHECK(op->groups_ >= 1 && op->m_ >= 1 && op->groups_ <= INT32_MAX / 4 && op->m_ <= INT32_MAX,
               "operator file is corrupt: 2:4 groups = ", op->groups_, ", M = ", op->m_);
  op->k_ = 4 * op->groups_;  // only once groups is in range: 4·groups could overflow before
  const kernels::Sparse24Layout layout{op->groups_, op->m_};
  op->values_ = r.get_array<float>("values", static_cast<uint64_t>(layout.value_count()));
  op->codes_ = r.get_array<uint8_t>("positions", static_cast<uint64_t>(layout.code_count()));
  op->bias_ = r.get_array<float>("bias", static_cast<uint64_t>(op->m_));
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the 2:4 weights");
  detail::check_all_finite(op->values_, "values", "operator file");
  detail::check_all_finite(op->bias_, "bias", "operator file");
  for (int64_t block = 0; block < layout.blocks(); ++block)
    for (int64_t m = 0; m < op->m_; ++m)
      for (int64_t g = 0; g < layout.count(block); ++g) {
        const int code = kernels::sparse24_code(op->codes_.data() + layout.code_offset(block, m), g);
        LUTMUL_CHECK((code & 3) < (code >> 2), "operator file is corrupt: 2:4 positions ", code & 3, " and ", code >> 2);
      }
  return op;
}

}  // namespace lutmul
