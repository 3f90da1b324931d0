// Internal: DenseLinear's product for a few rows (1 to 32, a sentence or a small batch).
//
// There the product is bound by reading W, not by arithmetic, and oneDNN's sgemm packs W on
// every call: on the MiniLM layers at 16 rows, cold in cache as in a model's forward, a matmul
// primitive over weights reordered once into its blocked layout took 5.3 ms for the 24
// products of the six blocks against sgemm's 8.6 ms (docs/experiments.md, "Small batches").
// From 64 rows on, sgemm is as fast or faster, so larger calls keep it.
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

  // Y (rows × M, leading dimension M) = X·W + bias for dense row-major X (leading
  // dimension K), 1 ≤ rows ≤ kMaxRows, on `threads` threads. False, with Y untouched, where
  // oneDNN has no blocked product for this shape (then the caller runs sgemm). The weights
  // are reordered at the first call (K·M floats more in memory from then on) and one
  // primitive per row count and thread count is made at its first call. Safe to call
  // concurrently.
  bool run(const float* x, int64_t rows, float* y, int threads) const;

 private:
  struct State;
  const float* w_;
  const float* bias_;
  int64_t k_, m_;
  std::unique_ptr<State> state_;
};

}  // namespace lutmul::detail
