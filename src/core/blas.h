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
// lutmul's own threads drive the parallelism of every BLAS-backed call, and OpenBLAS runs
// single-threaded inside them. Setting and restoring OpenBLAS's one global thread count around
// each call raced between concurrent callers, and two thread pools on the same cores competed.
// Setting it once was not enough: other code in the process (a benchmark's own BLAS baseline,
// say) may raise it again, and then every lutmul thread ran a pool of its own (2 threads: 3x
// slower). So each call reads the count, and writes 1 only when it is not 1: concurrent
// callers write the same value.
inline void use_single_threaded_blas() {
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}
}  // namespace lutmul::detail
