// The exact f32 product every BLAS-backed operator runs (src/core/sgemm.h): the backend runs
// the widest kernels this CPU has with no environment variable set, its results match a
// double-precision reference in every layout, and it leaves the caller's thread count alone.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "core/sgemm.h"
#include "lutmul/core/cpu_features.h"
#include "lutmul/core/product_backend.h"
#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul {
namespace {

// The oneDNN ISA name this CPU's features call for (oneDNN's names, widest first).
std::string expected_isa(const CpuFeatures& f) {
  const bool avx512_core = f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
  if (avx512_core && f.amx_tile && f.amx_int8 && f.amx_bf16) return "avx512_core_amx";
  if (avx512_core && f.avx512bf16) return "avx512_core_bf16";
  if (avx512_core && f.avx512vnni) return "avx512_core_vnni";
  if (avx512_core) return "avx512_core";
  if (f.avx2 && f.avxvnni) return "avx2_vnni";
  if (f.avx2) return "avx2";
  return "";
}

TEST(ExactProduct, RunsTheWidestKernelsThisCpuHasWithoutAnyEnvironmentVariable) {
  for (const char* name : {"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"})
    if (std::getenv(name) != nullptr) GTEST_SKIP() << name << " is set, so oneDNN's ISA is the one it names";
  const ProductBackend& backend = exact_product_backend();
  const std::string expected = expected_isa(cpu_features());
  if (expected.empty()) GTEST_SKIP() << "no AVX2 on this CPU (" << describe(cpu_features()) << ")";
  std::cout << "[          ] exact f32 products: " << backend.library << " " << backend.version << ", ISA "
            << backend.isa << " (CPU: " << describe(cpu_features()) << ")\n";
  EXPECT_EQ(backend.library, "oneDNN");
  EXPECT_EQ(backend.isa, expected);
}

// op(A)·op(B) + beta·C in double precision, for the layouts sgemm takes.
std::vector<double> reference(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const std::vector<float>& a,
                              const std::vector<float>& b, float beta, const std::vector<float>& c) {
  std::vector<double> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = beta * static_cast<double>(c[i * n + j]);
      for (int64_t p = 0; p < k; ++p)
        s += static_cast<double>(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
      out[i * n + j] = s;
    }
  return out;
}

TEST(ExactProduct, MatchesDoublePrecisionInEveryLayoutAndThreadCount) {
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const auto& [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 37, 19}, {33, 1, 70}, {67, 45, 129}}) {
        const std::vector<float> a = testing::uniform(m, k, -1.f, 1.f, 1), b = testing::uniform(k, n, -1.f, 1.f, 2);
        const std::vector<float> c0 = testing::uniform(m, n, -1.f, 1.f, 3);
        for (const float beta : {0.f, 1.f})
          for (const int threads : {1, 2, 3}) {
            std::vector<float> c = c0;
            detail::sgemm(ta, tb, m, n, k, a.data(), ta ? m : k, b.data(), tb ? k : n, beta, c.data(), n, threads);
            const std::vector<double> want = reference(ta, tb, m, n, k, a, b, beta, c0);
            for (size_t i = 0; i < c.size(); ++i)
              ASSERT_NEAR(c[i], want[i], 1e-5 * (1 + std::sqrt(static_cast<double>(k))))
                  << ta << tb << " " << m << "x" << n << "x" << k << " beta " << beta << " threads " << threads;
          }
      }
}

TEST(ExactProduct, LeavesTheCallersOpenMpThreadCountAsItWas) {
  const int before = omp_get_max_threads();
  const std::vector<float> a = testing::uniform(64, 64, -1.f, 1.f, 4);
  std::vector<float> c(64 * 64);
  detail::sgemm(false, false, 64, 64, 64, a.data(), 64, a.data(), 64, 0.f, c.data(), 64, before + 3);
  EXPECT_EQ(omp_get_max_threads(), before);
}

// DenseLinear checks X before the product when X is the smaller (K < M, row-major) and Y
// after it otherwise: a NaN or infinity in X is an error on both paths, an overflow of finite
// values is not.
TEST(ExactProduct, DenseLinearFiniteRuleHoldsWhicheverSideItChecks) {
  for (const auto& [k, m] : {std::pair<int64_t, int64_t>{24, 80}, {80, 24}}) {
    const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, 5);
    const DenseLinear op(MatrixView::row_major(w.data(), k, m));
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      std::vector<float> x = testing::uniform(50, k, -1.f, 1.f, 6);
      x[static_cast<size_t>(31 * k + k - 1)] = bad;
      const std::vector<float> col = testing::to_col_major(x, 50, k);
      Matrix y(50, m);
      EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), 50, k), y.data(), m), Error) << k << "x" << m;
      EXPECT_THROW(op.forward(MatrixView::col_major(col.data(), 50, k), y.data(), m), Error) << k << "x" << m;
    }
    std::vector<float> huge(static_cast<size_t>(3 * k), 3e38f);
    Matrix y(3, m);
    EXPECT_NO_THROW(op.forward(MatrixView::row_major(huge.data(), 3, k), y.data(), m)) << k << "x" << m;
  }
}

}  // namespace
}  // namespace lutmul
