// int8 quantized linear operator: symmetric per-output-channel int8 weights, int8
// activations quantized per row on the fly (dynamic, the default) or with one calibrated
// scale (static), an integer product (AVX-512 VNNI vpdpbusd, or the scalar reference) and a
// float epilogue, fused so that each row of X is read once.
//
// Math: s_w[m] = max_k |W[k,m]| / 127, w_q = round(W / s_w) in [-127, 127]. For a row x,
// s_x = max_k |x_k| / 127 (dynamic) or the calibrated scale (static), x_q = clamp(round(x /
// s_x), -127, 127). y[m] = float(Σ_k x_q[k]·w_q[k,m]) · (s_x·s_w[m]) + bias[m]. Integer sums
// are exact; every kernel equals the scalar reference bit for bit.
//
// Smoothing (SmoothQuant, Xiao et al. 2022) moves the range of outlier input channels into
// the weights: with c[k] the calibration rows' max |x_k| and w[k] = max_m |W[k,m]|,
// s[k] = c[k]^α / w[k]^(1−α), the operator quantizes the rows of X·diag(1/s) and the weights
// diag(s)·W, whose product is X·W. Each x_k is multiplied by 1/s[k] (one rounding) before the
// row's scale is taken, in every kernel.
//
// Two backends compute the integer sums: lutmul's own kernels (VNNI, AVX2, scalar) and, for
// blocks of 64 and 32 rows, oneDNN's u8·s8 matmul (AMX tiles on CPUs that have them). Both
// give the same Y bit for bit; Int8Backend picks, and path() says what runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul {
namespace kernels {
struct Int8KernelTable;
struct Int8QuantizeArgs;
}
namespace detail {
class Int8OnednnProduct;
}

enum class ActivationScaling {
  dynamic_per_row,    // s_x from each row's own max |x|
  static_per_tensor,  // one s_x from calibration rows (max |x|, or a percentile)
};

enum class Int8Backend {
  automatic,    // oneDNN where it runs AMX tiles, else the own kernels (docs/design.md, int8)
  own_kernels,  // lutmul's kernels for every row count
  onednn,       // oneDNN for whole blocks of rows (an Error where it has no exact product)
};

struct Int8Config {
  ActivationScaling activations = ActivationScaling::dynamic_per_row;
  // Static scaling: the percentile of |x| over the calibration rows that maps to 127
  // (100 = the maximum). Values beyond it saturate.
  double calibration_percentile = 100.0;
  // Smoothing strength α in [0, 1]: 0 (the default) smooths nothing; anything else needs
  // calibration rows. 0.5 to 0.7 suit transformer activations (docs/quality.md).
  double smoothing = 0.0;
  // A choice of this process, not of the model: files do not store it (a loaded operator
  // picks automatically).
  Int8Backend backend = Int8Backend::automatic;
};

class Int8Linear final : public SizedLinearOperator {
 public:
  // W is K × M, bias M floats or null; calibration rows (any N × K) are required for static
  // scaling and ignored otherwise.
  Int8Linear(const MatrixView& W, const float* bias = nullptr, Int8Config config = {},
             const MatrixView* calibration = nullptr);

  // The scalar reference path, whatever the CPU: what every kernel must equal.
  void forward_reference(const MatrixView& X, float* Y, int64_t ldy) const;
  // The parameters: packed int8 weights, scales, bias, column sums. Where oneDNN runs it also
  // holds its reordered copy of the weights (K·M bytes more in memory, not in files).
  int64_t bytes() const override;
  double multiply_adds_per_row() const override { return static_cast<double>(k_) * static_cast<double>(m_); }

  const Int8Config& config() const { return config_; }
  float weight_scale(int64_t m) const { return weight_scales_[m]; }
  float static_activation_scale() const { return static_scale_; }
  // s[k] of the smoothing (1 for every k without it).
  float smoothing_factor(int64_t k) const;
  // Quantized weight w_q[k][m] (of diag(s)·W where smoothed).
  int8_t quantized_weight(int64_t k, int64_t m) const;
  // What computes the integer sums: "oneDNN brg:avx512_core_amx for blocks of 64 and 32
  // rows, the avx512-vnni kernels for the rest", or the own kernels alone and why.
  std::string path() const;

  std::vector<uint8_t> payload() const override;
  static std::unique_ptr<Int8Linear> from_payload(const uint8_t* data, size_t size);

 private:
  void compute(const MatrixView& X, float* Y, int64_t ldy) const override;
  uint32_t file_version() const override;
  friend struct Int8KernelProbe;  // the tests run every built kernel table through forward_with
  Int8Linear() : SizedLinearOperator("int8") {}
  void forward_with(const kernels::Int8KernelTable& table, const MatrixView& X, float* Y, int64_t ldy) const;
  // Rows [0, n) for the largest n that whole oneDNN blocks cover; returns n.
  int64_t forward_onednn(const kernels::Int8KernelTable& table, const MatrixView& X, float* Y, int64_t ldy) const;
  void prepare_backend();
  kernels::Int8QuantizeArgs quantize_args() const;  // every field but the rows'

  Int8Config config_;
  int64_t k_padded_ = 0, m_padded_ = 0;    // K to a multiple of 4, M to a multiple of 16
  std::vector<int8_t> packed_;             // [K/4][M/16][16 outputs][4 k]
  std::vector<float> weight_scales_;       // M (padded entries 0)
  std::vector<int32_t> column_sums_;       // Σ_k w_q[k][m], for the u8 offset of vpdpbusd
  std::vector<float> bias_;                // M padded (zeros)
  float static_scale_ = 0.f;
  std::vector<float> column_inverse_;      // K: 1/s[k]; empty without smoothing
  std::shared_ptr<const detail::Int8OnednnProduct> onednn_;  // null: the own kernels only
  std::string own_only_reason_;                              // why onednn_ is null
};

}  // namespace lutmul
