// Internal: DenseLinear's product for a few rows (1 to 32, a sentence or a small batch).
//
// There the product is bound by reading W, not by arithmetic, and oneDNN's sgemm packs W on
// every call: on the MiniLM layers at 16 rows, cold in cache as in a model's forward, a matmul
// primitive over weights reordered once into its blocked layout took 5.3 ms for the 24
// products of the six blocks against sgemm's 8.6 ms (docs/experiments.md, "Small batches").
// From 64 rows on, sgemm is as fast or faster, so larger calls keep it. oneDNN 2.6 has those
// blocked kernels only from AVX-512 on; on AVX2 CPUs W is packed into lutmul's panels instead,
// for every call (docs/experiments.md, "Zen 3").
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

namespace lutmul::detail {

class SmallBatchProduct {
 public:
  static constexpr int64_t kMaxRows = 32;

  // For K × M row-major weights w (kept by the caller, read at the first run) and bias.
  SmallBatchProduct(const float* w, const float* bias, int64_t k, int64_t m);
  ~SmallBatchProduct();

  // Y (rows × M, leading dimension ldy) = X·W + bias for row-major X (leading dimension ldx)
  // on `threads` threads. Where on_panels(): lutmul's panel product (kernels/cpu/dense/), at
  // every row count and stride. Else, for 1 ≤ rows ≤ kMaxRows and dense X and Y, oneDNN's
  // blocked product where it has one for this shape. False, with Y untouched, otherwise (then
  // the caller runs sgemm). The weights are reordered or packed at the first call (K·M
  // floats more in memory from then on) and one primitive per row count and thread count is
  // made at its first call. Safe to call concurrently.
  bool run(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy, int threads) const;

  // True where oneDNN has no blocked f32 kernel (AVX2 CPUs) and lutmul has a vector panel
  // kernel: then every product of this W goes through the panels, whatever its rows, so a
  // row's result never depends on the call it came in (oneDNN's sgemm rounds differently at
  // different row counts there).
  bool on_panels() const;

 private:
  void prepare() const;
  bool run_on_panels(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy, int threads) const;

  struct State;
  const float* w_;
  const float* bias_;
  int64_t k_, m_;
  std::unique_ptr<State> state_;
};

}  // namespace lutmul::detail
