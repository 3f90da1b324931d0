// Y = X·W + bias with W stored in bfloat16 (8-bit mantissa, float's range): half the bytes of
// the dense weights and about 1.5–1.8x the speed of the f32 product on CPUs with AVX512-BF16
// (AMD Zen 4), about 4x on CPUs with AMX (Sapphire Rapids; docs/performance.md). X is rounded to bfloat16 on the fly; products accumulate and
// Y is written in float. On a CPU with neither (AVX2), lutmul's panel product multiplies the
// same rounded values, the weights kept in bfloat16 and widened in registers: about the f32
// product's speed on large batches and faster on a few rows, whose product reads the weights
// from memory. Elsewhere (no vector panel kernel) the f32 product runs on the rounded values.
// The same result up to summation order on every path; path() says which runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul {

namespace detail {
class Bf16OnednnProduct;  // the oneDNN product (src/operators/bf16_onednn.h)
}

class Bf16Linear final : public SizedLinearOperator {
 public:
  // W is K × M (rounded to bfloat16, to nearest even), bias is M floats (kept in float) or null.
  Bf16Linear(const MatrixView& W, const float* bias = nullptr);

  int64_t bytes() const override;
  double multiply_adds_per_row() const override { return static_cast<double>(k_) * static_cast<double>(m_); }
  // "oneDNN brg:avx512_core_amx_bf16 for blocks of 64, 32 and 16 rows (the last rows padded to
  // one), gemm:jit where Y is wider than M",
  // "oneDNN gemm:jit", ..., "lutmul bfloat16 panels" or "f32 product of bfloat16 values".
  std::string path() const;
  // Where oneDNN runs AMX blocks, the epilogue (GELU, the residual add) is its post-ops,
  // applied as each block is stored; oneDNN's erf is within 1e-6 of the runtime's GELU pass.
  bool fuses_epilogue() const override;

  // A pair of layers whose activations between them stay in bfloat16 (the runtime's
  // feed-forward), where AMX blocks run (fuses_epilogue(); an Error elsewhere). The first
  // writes Y = epilogue(X·W + bias) in bfloat16 (rounded to nearest even, as forward would
  // round it as the next layer's X); the second reads such rows (dense, `rows` × K) as its X.
  // Non-finite values in X are an Error as for forward.
  void forward_bf16_out(const MatrixView& X, uint16_t* Y, int64_t ldy, const Epilogue& epilogue) const;
  void forward_bf16_in(const uint16_t* X, int64_t rows, float* Y, int64_t ldy, const Epilogue& epilogue) const;

  std::vector<uint8_t> payload() const override;
  static std::unique_ptr<Bf16Linear> from_payload(const uint8_t* data, size_t size);
  const std::vector<uint16_t>& weights() const { return weights_; }  // K × M bfloat16 bits, row-major
  const std::vector<float>& bias() const { return bias_; }

 private:
  void compute(const MatrixView& X, float* Y, int64_t ldy) const override;
  void forward_fused(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const override;
  void compute_with(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const;
  void check_chainable(const char* who) const;
  void check_output(const void* Y, int64_t rows, int64_t ldy) const;
  void compute_on_panels(const MatrixView& X, float* Y, int64_t ldy) const;
  Bf16Linear() : SizedLinearOperator("bf16") {}
  void prepare();  // the primitive, else the panels, else the fallback's float weights
  std::vector<uint16_t> weights_;               // K × M row-major
  std::vector<float> bias_;                     // M
  std::shared_ptr<const detail::Bf16OnednnProduct> product_;  // null: the fallback runs
  std::vector<uint16_t> panels_;                // the weights as bfloat16 panels (kernels/cpu/dense/), panels only
  std::vector<float> fallback_weights_;         // the bfloat16 weights as floats, fallback only
};

// bfloat16 bits of x, rounded to nearest even (NaN stays NaN); and back.
uint16_t to_bfloat16(float x);
float from_bfloat16(uint16_t bits);

}  // namespace lutmul
