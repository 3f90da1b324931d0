#include "lutmul/operators/sparse_linear.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/aligned_scratch.h"
#include "core/file_format.h"
#include "core/finite.h"
#include "core/kernel_registry.h"
#include "kernels/cpu/pruned/sparse_kernels.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "operators/operator_skeleton.h"
#include "operators/pruning_scores.h"

namespace lutmul {

SparseLinear::SparseLinear(const MatrixView& W, const float* bias, SparseConfig config, const MatrixView* calibration)
    : SizedLinearOperator("sparse") {
  detail::check_weights(W, "SparseLinear");
  LUTMUL_CHECK(W.rows <= INT32_MAX && W.cols <= INT32_MAX, "SparseLinear: W is too large (", W.rows, " x ", W.cols, ")");
  LUTMUL_CHECK(config.kept_weights >= 0 || (config.sparsity >= 0 && config.sparsity < 1), "SparseConfig.sparsity must be in [0, 1), got ",
               config.sparsity);
  k_ = W.rows;
  m_ = W.cols;

  const std::vector<double> scores = detail::pruning_scores(W, calibration, "SparseLinear");

  // Keep the round((1 − sparsity)·K·M) highest scores (or exactly config.kept_weights); ties
  // keep the lower flat index.
  const int64_t total = k_ * m_;
  LUTMUL_CHECK(config.kept_weights <= total, "SparseConfig.kept_weights = ", config.kept_weights, " exceeds K x M = ",
               total);
  const int64_t keep = config.kept_weights >= 0
                           ? config.kept_weights
                           : static_cast<int64_t>(std::llround((1.0 - config.sparsity) * static_cast<double>(total)));
  std::vector<std::pair<double, int64_t>> scored(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) scored[i] = {scores[i], i};
  auto better = [](const std::pair<double, int64_t>& a, const std::pair<double, int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  std::vector<uint8_t> kept(static_cast<size_t>(total), 0);
  if (keep > 0) {
    std::nth_element(scored.begin(), scored.begin() + (keep - 1), scored.end(), better);
    for (int64_t i = 0; i < keep; ++i) kept[scored[i].second] = 1;
  }

  blocks_ = (k_ + kernels::kSparseBlockK - 1) / kernels::kSparseBlockK;
  segment_start_.assign(static_cast<size_t>(blocks_ * m_) + 1, 0);
  offsets_.reserve(static_cast<size_t>(keep));
  values_.reserve(static_cast<size_t>(keep));
  for (int64_t b = 0; b < blocks_; ++b) {
    const int64_t k_end = std::min(k_, (b + 1) * kernels::kSparseBlockK);
    for (int64_t m = 0; m < m_; ++m) {
      for (int64_t k = b * kernels::kSparseBlockK; k < k_end; ++k)
        if (kept[k * m_ + m]) {
          offsets_.push_back(static_cast<uint8_t>(k - b * kernels::kSparseBlockK));
          values_.push_back(W.at(k, m));
        }
      segment_start_[b * m_ + m + 1] = static_cast<int64_t>(values_.size());
    }
  }
  bias_ = detail::copy_bias(bias, m_, "SparseLinear");
}

std::vector<float> SparseLinear::pruned_dense() const {
  std::vector<float> w(static_cast<size_t>(k_ * m_), 0.f);
  for (int64_t segment = 0; segment < blocks_ * m_; ++segment)
    for (int64_t i = segment_start_[segment]; i < segment_start_[segment + 1]; ++i)
      w[((segment / m_) * kernels::kSparseBlockK + offsets_[i]) * m_ + segment % m_] = values_[i];
  return w;
}

int64_t SparseLinear::bytes() const {
  return static_cast<int64_t>(values_.size() * (sizeof(float) + sizeof(uint8_t)) +
                              segment_start_.size() * sizeof(int64_t) + bias_.size() * sizeof(float));
}


void SparseLinear::run(const MatrixView& X, float* Y, int64_t ldy, bool reference) const {
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  // The weights; run_row_tiles fills in the rows (RowTileArgs) chunk by chunk.
  kernels::SparseArgs args{{}, k_, m_, blocks_, segment_start_.data(), offsets_.data(), values_.data()};
  args.bias = bias_.data();
  const bool finite = detail::run_row_tiles(
      X, Y, ldy, kernels::kSparseTileRows, static_cast<size_t>(kernels::sparse_scratch_floats(k_, m_)), args,
      (reference ? detail::reference_kernels() : detail::active_kernels()).sparse);
  LUTMUL_CHECK(finite, "sparse forward: X has a non-finite value (", X.rows, " x ", X.cols, " input)");
}

void SparseLinear::compute(const MatrixView& X, float* Y, int64_t ldy) const { run(X, Y, ldy, false); }
void SparseLinear::forward_reference(const MatrixView& X, float* Y, int64_t ldy) const { run(X, Y, ldy, true); }

std::vector<SparseLinear> prune_globally(const std::vector<MatrixView>& weights, double sparsity,
                                         const std::vector<const float*>& biases,
                                         const std::vector<const MatrixView*>& calibrations) {
  const size_t layers = weights.size();
  LUTMUL_CHECK(layers >= 1, "prune_globally: no layers given");
  LUTMUL_CHECK(sparsity >= 0 && sparsity < 1, "prune_globally: sparsity must be in [0, 1), got ", sparsity);
  LUTMUL_CHECK(biases.empty() || biases.size() == layers, "prune_globally: ", biases.size(), " biases for ", layers,
               " layers");
  LUTMUL_CHECK(calibrations.empty() || calibrations.size() == layers, "prune_globally: ", calibrations.size(),
               " calibration sets for ", layers, " layers");
  // One ranking over every weight: (score, layer, flat index).
  struct Scored {
    double score;
    uint32_t layer;
    int64_t index;
  };
  std::vector<Scored> all;
  for (size_t l = 0; l < layers; ++l) {
    check_view(weights[l], "W");
    LUTMUL_CHECK(weights[l].rows >= 1 && weights[l].cols >= 1, "prune_globally: layer ", l, " is empty");
    check_finite(weights[l], "W");
    const std::vector<double> scores =
        detail::pruning_scores(weights[l], calibrations.empty() ? nullptr : calibrations[l], "prune_globally");
    for (int64_t i = 0; i < static_cast<int64_t>(scores.size()); ++i)
      all.push_back({scores[i], static_cast<uint32_t>(l), i});
  }
  const auto keep = static_cast<int64_t>(std::llround((1.0 - sparsity) * static_cast<double>(all.size())));
  std::vector<int64_t> kept(layers, 0);
  if (keep > 0) {
    std::nth_element(all.begin(), all.begin() + (keep - 1), all.end(), [](const Scored& a, const Scored& b) {
      if (a.score != b.score) return a.score > b.score;
      return a.layer != b.layer ? a.layer < b.layer : a.index < b.index;
    });
    for (int64_t i = 0; i < keep; ++i) ++kept[all[i].layer];
  }
  // Each layer keeps its own top `kept` by the same order, which are exactly the weights the
  // global ranking chose.
  std::vector<SparseLinear> result;
  result.reserve(layers);
  for (size_t l = 0; l < layers; ++l) {
    SparseConfig config;
    config.kept_weights = kept[l];
    result.emplace_back(weights[l], biases.empty() ? nullptr : biases[l], config,
                        calibrations.empty() ? nullptr : calibrations[l]);
  }
  return result;
}

std::vector<uint8_t> SparseLinear::payload() const {
  // The file keeps input indices (k), as 32-bit integers.
  std::vector<int32_t> rows(offsets_.size());
  for (int64_t segment = 0; segment < blocks_ * m_; ++segment)
    for (int64_t i = segment_start_[segment]; i < segment_start_[segment + 1]; ++i)
      rows[i] = static_cast<int32_t>((segment / m_) * kernels::kSparseBlockK + offsets_[i]);
  return detail::pack(k_, m_, segment_start_, rows, values_, bias_);
}

std::unique_ptr<SparseLinear> SparseLinear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  std::unique_ptr<SparseLinear> op(new SparseLinear());
  op->k_ = r.get<int64_t>("K");
  op->m_ = r.get<int64_t>("M");
  LUTMUL_CHECK(op->k_ >= 1 && op->m_ >= 1 && op->k_ <= INT32_MAX && op->m_ <= INT32_MAX,
               "operator file is corrupt: sparse K = ", op->k_, ", M = ", op->m_);
  op->blocks_ = (op->k_ + kernels::kSparseBlockK - 1) / kernels::kSparseBlockK;
  op->segment_start_ = r.get_array<int64_t>("segment starts", static_cast<uint64_t>(op->blocks_ * op->m_) + 1);
  const std::vector<int32_t> rows = r.get_array<int32_t>("row indices");
  op->values_ = r.get_array<float>("values", rows.size());
  op->bias_ = r.get_array<float>("bias", static_cast<uint64_t>(op->m_));
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the sparse weights");
  detail::check_all_finite(op->values_, "values", "operator file");
  detail::check_all_finite(op->bias_, "bias", "operator file");
  // The kernels index X with these: every segment in order, inside its block, ascending.
  const auto nonzeros = static_cast<int64_t>(rows.size());
  LUTMUL_CHECK(op->segment_start_.front() == 0 && op->segment_start_.back() == nonzeros,
               "operator file is corrupt: sparse segments do not cover the ", nonzeros, " kept weights");
  for (int64_t segment = 0; segment < op->blocks_ * op->m_; ++segment) {
    const int64_t begin = op->segment_start_[segment], end = op->segment_start_[segment + 1];
    // Checked here, before rows[i] is read: a later segment coming back to `nonzeros` is too late.
    LUTMUL_CHECK(begin <= end && end <= nonzeros, "operator file is corrupt: sparse segment ", segment, " (",
                 begin, "..", end, ") is not within the ", nonzeros, " kept weights");
    const int64_t block = segment / op->m_;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t k = rows[i];
      LUTMUL_CHECK(k >= block * kernels::kSparseBlockK && k < std::min(op->k_, (block + 1) * kernels::kSparseBlockK) &&
                       (i == begin || k > rows[i - 1]),
                   "operator file is corrupt: sparse row index ", k, " in segment ", segment);
    }
  }
  op->offsets_.resize(rows.size());
  for (int64_t segment = 0; segment < op->blocks_ * op->m_; ++segment)
    for (int64_t i = op->segment_start_[segment]; i < op->segment_start_[segment + 1]; ++i)
      op->offsets_[i] = static_cast<uint8_t>(rows[i] - (segment / op->m_) * kernels::kSparseBlockK);
  return op;
}

}  // namespace lutmul
