// Internal: the BLAS and LAPACK calls lutmul makes (OpenBLAS, which carries LAPACK).
#pragma once

#include <cblas.h>

#include <cstddef>

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int threads);

// LAPACK symmetric eigensolver (divide and conquer). The trailing size_t arguments are
// gfortran's hidden lengths of the two character arguments.
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t jobz_len,
             size_t uplo_len);

// LAPACK singular value decomposition (divide and conquer), column-major A = U·diag(s)·VT.
void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s, double* u,
             const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* iwork, int* info,
             size_t jobz_len);
}

namespace lutmul::detail {
// Runs OpenBLAS on a given thread count for a scope, then restores the caller's setting.
// Training uses one: its products are small, OpenBLAS's own pool would compete with
// lutmul's OpenMP threads, and results then do not depend on the thread count.
class BlasThreadScope {
 public:
  explicit BlasThreadScope(int threads) : saved_(openblas_get_num_threads()) { openblas_set_num_threads(threads); }
  ~BlasThreadScope() { openblas_set_num_threads(saved_); }
  BlasThreadScope(const BlasThreadScope&) = delete;
  BlasThreadScope& operator=(const BlasThreadScope&) = delete;

 private:
  int saved_;
};
}  // namespace lutmul::detail
