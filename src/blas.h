// Internal: the BLAS and LAPACK calls lutmul makes (OpenBLAS, which carries LAPACK).
#pragma once

#include <cblas.h>

#include <cstddef>

extern "C" {
// LAPACK symmetric eigensolver (divide and conquer). The trailing size_t arguments are
// gfortran's hidden lengths of the two character arguments.
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t jobz_len,
             size_t uplo_len);
}
