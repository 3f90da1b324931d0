// Structured pruning: whole output channels (columns of W) or input channels (rows of W)
// with the smallest L2 norms removed, leaving a smaller dense product through BLAS. Pruned
// outputs are their bias alone; pruned inputs are never read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul {

enum class PrunedChannels { outputs, inputs };

struct ChannelPruningConfig {
  PrunedChannels channels = PrunedChannels::outputs;
  double fraction = 0.5;  // share of channels removed, in [0, 1)
};

class ChannelPrunedLinear final : public SizedLinearOperator {
 public:
  // W is K × M, bias M floats or null. Ties in norm keep the lower channel index.
  ChannelPrunedLinear(const MatrixView& W, const float* bias = nullptr, ChannelPruningConfig config = {});

  int64_t bytes() const override;
  double multiply_adds_per_row() const override {
    return static_cast<double>(kept_inputs_.size()) * static_cast<double>(kept_outputs_.size());
  }

  const std::vector<int64_t>& kept_inputs() const { return kept_inputs_; }
  const std::vector<int64_t>& kept_outputs() const { return kept_outputs_; }

  std::vector<uint8_t> payload() const override;
  static std::unique_ptr<ChannelPrunedLinear> from_payload(const uint8_t* data, size_t size);

 private:
  void compute(const MatrixView& X, float* Y, int64_t ldy) const override;
  ChannelPrunedLinear() : SizedLinearOperator("channel_pruned") {}
  std::vector<int64_t> kept_inputs_, kept_outputs_;  // ascending
  std::vector<float> weights_;                       // kept inputs × kept outputs, row-major
  std::vector<float> bias_;                          // M
};

}  // namespace lutmul
