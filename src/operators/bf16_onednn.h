// Internal: Bf16Linear's product through oneDNN's matmul: bfloat16 X and W, float bias and Y,
// and an epilogue (GELU, the residual add) as oneDNN post-ops.
//
// oneDNN 2.6 runs a primitive with a run-time row count only on its gemm:jit kernels, which
// never use AMX. So blocks of a fixed row count run brgemm primitives on weights reordered
// once into their layout, each block on the calling thread alone (the operator hands one
// block to each of its threads, so a block's rows and output stay in that core's L2), and the
// rows left over run as one block padded with zero rows; outputs with a leading dimension
// other than M run the general primitive on the caller's thread count. Scratchpad memory is per calling thread, so concurrent calls
// share nothing mutable but the primitives' cache (core/onednn_primitives.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "lutmul/operators/epilogue.h"

namespace lutmul::detail {

class Bf16OnednnProduct {
 public:
  // Row counts of the blocks, largest first. One block per thread at a time: at two threads
  // 64-row blocks ran the bf16 runtime (runtime_embed_bf16/64/2) at 826–840 sentences/s
  // against 697–707 with 256-row blocks that oneDNN split among the threads. 16 rows, the
  // height of a tile, for short sentences: one of 16 tokens took 1.6–1.7 ms against 3.8 ms on
  // gemm:jit (batch-1 latency, one thread, Sapphire Rapids).
  static constexpr int64_t kBlockRows[] = {64, 32, 16};

  // For K × M row-major bfloat16 weights w, which every call passes again (the general
  // primitive reads them in place). Blocks run only on AMX tiles: brgemm's AVX512-BF16 kernels
  // were not measured faster than gemm:jit (Zen 4). dnnl::error where oneDNN has no bfloat16
  // product for the CPU.
  Bf16OnednnProduct(int64_t k, int64_t m, const uint16_t* w);
  ~Bf16OnednnProduct();

  // "brg:avx512_core_amx_bf16 for blocks of 64, 32 and 16 rows (the last rows padded to one),
  // gemm:jit where Y is wider than M", or the general primitive's name alone.
  const std::string& implementation() const { return implementation_; }
  bool has_blocks() const { return has_blocks_; }

  // Where Y goes: float, or bfloat16 (oneDNN rounds to nearest even, as round_bf16 does) for
  // a next product that reads it as its X.
  struct Output {
    void* y = nullptr;
    int64_t ldy = 0;
    bool bf16 = false;
    void* row(int64_t r) const { return static_cast<char*>(y) + r * ldy * (bf16 ? 2 : 4); }
  };

  // Y (n × M) = epilogue(x·W + bias) for n dense rows of x (leading dimension K) through the
  // general primitive, on `threads` OpenMP threads (the blocks' primitives are made for one
  // thread only).
  void run(const uint16_t* x, int64_t n, const uint16_t* w, const float* bias, const Output& y, int threads,
           const Epilogue& epilogue) const;
  // The same for one block of `rows` (one of kBlockRows) rows and a dense Y (leading
  // dimension M), on the calling thread alone; has_blocks() only.
  void run_block(const uint16_t* x, int64_t rows, const uint16_t* w, const float* bias, void* y, bool bf16_y,
                 const Epilogue& epilogue) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool has_blocks_ = false;
  std::string implementation_;
};

}  // namespace lutmul::detail
