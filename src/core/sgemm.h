// Internal: every exact f32 product lutmul computes goes through here (oneDNN's GEMM).
//
// Why oneDNN and not the BLAS: Debian's OpenBLAS 0.3.21 picks its kernel from a table of CPU
// models, and on CPUs newer than that table (Sapphire Rapids) it falls back to a generic
// kernel 2.4x slower unless OPENBLAS_CORETYPE is set before the process starts; oneDNN reads
// the CPU's feature flags and runs its AVX-512 (or AVX2) kernels on any CPU that has them.
// Measured on AMD EPYC Zen 4 at one thread, its sgemm is also 8-90 % faster than OpenBLAS on
// the shapes lutmul benchmarks (docs/experiments.md). And its threads are OpenMP's, set per
// calling thread, so a call needs no process-wide setting and concurrent callers cannot race.
#pragma once

#include <cstdint>

namespace lutmul::detail {

// oneDNN sizes its OpenMP team from omp_get_max_threads(), an ICV of the calling thread only:
// this sets it for one call and puts it back, so the caller's own parallel regions are not
// changed and no other thread sees it.
class OpenMpThreadsForCall {
 public:
  explicit OpenMpThreadsForCall(int threads);
  ~OpenMpThreadsForCall();
  OpenMpThreadsForCall(const OpenMpThreadsForCall&) = delete;
  OpenMpThreadsForCall& operator=(const OpenMpThreadsForCall&) = delete;

 private:
  int saved_;
};

// C (m × n, row-major, leading dimension ldc) = op(A)·op(B) + beta·C, where A is m × k
// row-major (lda ≥ k) or, with a_transposed, k × m row-major (lda ≥ m), and B is k × n
// row-major (ldb ≥ n) or, with b_transposed, n × k row-major (ldb ≥ k). Runs on up to `threads` OpenMP threads (one when called inside a parallel
// region). beta = 0 ignores what C held.
void sgemm(bool a_transposed, bool b_transposed, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc, int threads);

}  // namespace lutmul::detail
