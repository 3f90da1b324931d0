#include "lutmul/operators/channel_pruned_linear.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/sgemm.h"
#include "core/file_format.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "operators/operator_skeleton.h"

namespace lutmul {

ChannelPrunedLinear::ChannelPrunedLinear(const MatrixView& W, const float* bias, ChannelPruningConfig config)
    : SizedLinearOperator("channel_pruned") {
  detail::check_weights(W, "ChannelPrunedLinear");
  LUTMUL_CHECK(config.fraction >= 0 && config.fraction < 1, "ChannelPruningConfig.fraction must be in [0, 1), got ",
               config.fraction);
  k_ = W.rows;
  m_ = W.cols;
  const bool outputs = config.channels == PrunedChannels::outputs;
  const int64_t channels = outputs ? m_ : k_;
  std::vector<double> norm(static_cast<size_t>(channels), 0.0);
  for (int64_t k = 0; k < k_; ++k)
    for (int64_t m = 0; m < m_; ++m) norm[outputs ? m : k] += double{W.at(k, m)} * W.at(k, m);
  const auto keep = std::max<int64_t>(
      1, channels - static_cast<int64_t>(std::llround(config.fraction * static_cast<double>(channels))));
  std::vector<int64_t> order(static_cast<size_t>(channels));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return norm[a] > norm[b]; });
  std::vector<int64_t> kept(order.begin(), order.begin() + keep);
  std::sort(kept.begin(), kept.end());
  kept_inputs_.resize(static_cast<size_t>(k_));
  std::iota(kept_inputs_.begin(), kept_inputs_.end(), 0);
  kept_outputs_.resize(static_cast<size_t>(m_));
  std::iota(kept_outputs_.begin(), kept_outputs_.end(), 0);
  (outputs ? kept_outputs_ : kept_inputs_) = kept;

  const int64_t kk = static_cast<int64_t>(kept_inputs_.size()), mk = static_cast<int64_t>(kept_outputs_.size());
  weights_.resize(static_cast<size_t>(kk * mk));
  for (int64_t i = 0; i < kk; ++i)
    for (int64_t j = 0; j < mk; ++j) weights_[i * mk + j] = W.at(kept_inputs_[i], kept_outputs_[j]);
  bias_ = detail::copy_bias(bias, m_, "ChannelPrunedLinear");
}

int64_t ChannelPrunedLinear::bytes() const {
  return static_cast<int64_t>((weights_.size() + bias_.size()) * sizeof(float) +
                              (kept_inputs_.size() + kept_outputs_.size()) * sizeof(int64_t));
}

void ChannelPrunedLinear::compute(const MatrixView& X, float* Y, int64_t ldy) const {
  const int64_t n = X.rows, kk = static_cast<int64_t>(kept_inputs_.size()), mk = static_cast<int64_t>(kept_outputs_.size());
  // The kept inputs of X, row-major (a copy: the product needs them contiguous).
  std::vector<float> x(static_cast<size_t>(n * kk));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < kk; ++j) x[i * kk + j] = X.at(i, kept_inputs_[j]);
  for (float v : x) LUTMUL_CHECK(std::isfinite(v), "channel-pruned forward: X has a non-finite value in a kept input");
  std::vector<float> y(static_cast<size_t>(n * mk));
  detail::sgemm(false, false, n, mk, kk, x.data(), kk, weights_.data(), mk, 0.f, y.data(), mk, num_threads());
  for (int64_t i = 0; i < n; ++i) {
    float* row = Y + i * ldy;
    std::copy(bias_.begin(), bias_.end(), row);  // pruned outputs keep their bias
    for (int64_t j = 0; j < mk; ++j) row[kept_outputs_[j]] += y[i * mk + j];
  }
}

std::vector<uint8_t> ChannelPrunedLinear::payload() const {
  return detail::pack(k_, m_, kept_inputs_, kept_outputs_, weights_, bias_);
}

std::unique_ptr<ChannelPrunedLinear> ChannelPrunedLinear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  std::unique_ptr<ChannelPrunedLinear> op(new ChannelPrunedLinear());
  op->k_ = r.get<int64_t>("K");
  op->m_ = r.get<int64_t>("M");
  LUTMUL_CHECK(op->k_ >= 1 && op->m_ >= 1 && op->k_ <= INT32_MAX && op->m_ <= INT32_MAX,
               "operator file is corrupt: channel-pruned K = ", op->k_, ", M = ", op->m_);
  op->kept_inputs_ = r.get_array<int64_t>("kept inputs");
  op->kept_outputs_ = r.get_array<int64_t>("kept outputs");
  const auto ascending_within = [](const std::vector<int64_t>& kept, int64_t limit) {
    for (size_t i = 0; i < kept.size(); ++i)
      if (kept[i] < 0 || kept[i] >= limit || (i > 0 && kept[i] <= kept[i - 1])) return false;
    return !kept.empty();
  };
  LUTMUL_CHECK(ascending_within(op->kept_inputs_, op->k_) && ascending_within(op->kept_outputs_, op->m_),
               "operator file is corrupt: kept channels are not ascending indices within K x M");
  op->weights_ = r.get_array<float>("weights", op->kept_inputs_.size() * op->kept_outputs_.size());
  op->bias_ = r.get_array<float>("bias", static_cast<uint64_t>(op->m_));
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the channel-pruned weights");
  detail::check_all_finite(op->weights_, "weights", "operator file");
  detail::check_all_finite(op->bias_, "bias", "operator file");
  return op;
}

}  // namespace lutmul
