// DenseLinear on 1 to 32 dense rows runs oneDNN's matmul over weights reordered once
// (src/operators/dense_small_batches.h); other calls run sgemm. Both against a double-precision
// product, at every row count around the switch, from several threads, and after a copy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "lutmul/lutmul.h"
#include "operators/dense_small_batches.h"
#include "test_util.h"

namespace lutmul::testing {
namespace {

// max over outputs of |y − exact| / (Σ_k |x_k·w_km| + |b_m|): float rounding of the sum, whatever
// order a kernel adds in, stays under K · 2^-24 of it.
double worst_scaled_error(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                          const float* y, int64_t ldy, int64_t n, int64_t k, int64_t m) {
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double exact = b[static_cast<size_t>(j)], scale = std::abs(b[static_cast<size_t>(j)]);
      for (int64_t t = 0; t < k; ++t) {
        const double p = static_cast<double>(x[static_cast<size_t>(i * k + t)]) * w[static_cast<size_t>(t * m + j)];
        exact += p;
        scale += std::abs(p);
      }
      worst = std::max(worst, std::abs(y[i * ldy + j] - exact) / scale);
    }
  return worst;
}

TEST(DenseSmallBatches, EveryRowCountAroundTheSwitchMatchesTheExactProduct) {
  const int saved_threads = num_threads();
  for (const auto& [k, m] : {std::pair<int64_t, int64_t>{384, 1152}, {37, 5}, {1, 64}, {200, 3}}) {
    const std::vector<float> w = uniform(k, m, -1.f, 1.f, static_cast<uint64_t>(k + m));
    const std::vector<float> b = uniform(1, m, -1.f, 1.f, 7);
    const DenseLinear op(MatrixView::row_major(w.data(), k, m), b.data());
    const DenseLinear copy = op;  // its own reordered weights, read from its own buffer
    for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{16}, int64_t{31}, detail::SmallBatchProduct::kMaxRows, int64_t{33},
                      int64_t{64}}) {
      const std::vector<float> x = uniform(n, k, -1.f, 1.f, static_cast<uint64_t>(n));
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        std::vector<float> y(static_cast<size_t>(n * m)), strided(static_cast<size_t>(n * (m + 3)));
        op.forward(MatrixView::row_major(x.data(), n, k), y.data(), m);
        const double bound = static_cast<double>(k + 1) * std::ldexp(1.0, -23);
        EXPECT_LE(worst_scaled_error(x, w, b, y.data(), m, n, k, m), bound) << n << " x " << k << " x " << m;
        op.forward(MatrixView::row_major(x.data(), n, k), strided.data(), m + 3);  // a strided Y: sgemm
        EXPECT_LE(worst_scaled_error(x, w, b, strided.data(), m + 3, n, k, m), bound);
        std::vector<float> again(y.size());
        copy.forward(MatrixView::row_major(x.data(), n, k), again.data(), m);
        EXPECT_EQ(again, y) << "the copy, " << n << " rows";
      }
    }
  }
  set_num_threads(saved_threads);
}

// Where oneDNN has its AVX-512 blocked kernels, every row count from 1 to 32 runs them (no
// silent fall-back to sgemm); DenseLinear gives the same bits; 0 and 33 rows are refused.
TEST(DenseSmallBatches, EveryRowCountUpTo32RunsTheBlockedProductWhereOneDnnHasIt) {
  const std::string isa = exact_product_backend().isa;
  if (isa.find("avx512") == std::string::npos)
    GTEST_SKIP() << "oneDNN runs '" << isa << "' here: its blocked f32 matmul needs AVX-512, so sgemm runs";
  const int64_t k = 384, m = 1152;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 3), b = uniform(1, m, -1.f, 1.f, 4);
  const detail::SmallBatchProduct product(w.data(), b.data(), k, m);
  const DenseLinear op(MatrixView::row_major(w.data(), k, m), b.data());
  for (int64_t n = 1; n <= detail::SmallBatchProduct::kMaxRows; ++n) {
    const std::vector<float> x = uniform(n, k, -1.f, 1.f, static_cast<uint64_t>(n + 100));
    std::vector<float> y(static_cast<size_t>(n * m));
    ASSERT_TRUE(product.run(x.data(), k, n, y.data(), m, 1)) << n << " rows";
    EXPECT_EQ(y, op.forward(MatrixView::row_major(x.data(), n, k)).values) << n << " rows";
  }
  std::vector<float> y(static_cast<size_t>(33 * m)), x(static_cast<size_t>(33 * k));
  EXPECT_FALSE(product.run(x.data(), k, 0, y.data(), m, 1));
  EXPECT_FALSE(product.run(x.data(), k, 33, y.data(), m, 1));
}

// Where the panels run (AVX2 CPUs), a row's bits do not depend on the call: every row count,
// a column-major X, a strided Y and two threads give the bits of the rows one at a time. (On
// those CPUs oneDNN's sgemm rounds differently at different row counts.)
TEST(DenseSmallBatches, OnPanelsARowsBitsDoNotDependOnTheCall) {
  const int64_t k = 1536, m = 40;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 5), b = uniform(1, m, -1.f, 1.f, 6);
  const DenseLinear op(MatrixView::row_major(w.data(), k, m), b.data());
  if (!detail::SmallBatchProduct(w.data(), b.data(), k, m).on_panels())
    GTEST_SKIP() << "oneDNN has its blocked f32 kernels here (or no vector panel kernel): the panels do not run";
  const int64_t n = 150;
  const std::vector<float> x = uniform(n, k, -1.f, 1.f, 8);
  std::vector<float> alone(static_cast<size_t>(n * m));
  for (int64_t r = 0; r < n; ++r) op.forward(MatrixView::row_major(x.data() + r * k, 1, k), alone.data() + r * m, m);
  const int saved_threads = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int64_t rows : {int64_t{5}, int64_t{32}, int64_t{33}, int64_t{100}, n}) {
      const std::vector<float> y = op.forward(MatrixView::row_major(x.data(), rows, k)).values;
      EXPECT_TRUE(std::equal(y.begin(), y.end(), alone.begin())) << rows << " rows, " << threads << " threads";
    }
    const std::vector<float> x_col = to_col_major(x, n, k);
    EXPECT_EQ(op.forward(MatrixView::col_major(x_col.data(), n, k)).values, alone) << "column-major X";
    std::vector<float> strided(static_cast<size_t>(n * (m + 3)));
    op.forward(MatrixView::row_major(x.data(), n, k), strided.data(), m + 3);
    for (int64_t r = 0; r < n; ++r)
      ASSERT_TRUE(std::equal(alone.begin() + r * m, alone.begin() + (r + 1) * m, strided.begin() + r * (m + 3))) << "strided Y, row " << r;
  }
  set_num_threads(saved_threads);
}

TEST(DenseSmallBatches, SharedFromThreadsGivesTheSingleThreadedResult) {
  const int64_t k = 384, m = 384;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 1);
  const DenseLinear op(MatrixView::row_major(w.data(), k, m));
  std::vector<std::vector<float>> inputs, expected;
  for (int64_t n = 1; n <= 40; n += 3) {
    inputs.push_back(uniform(n, k, -1.f, 1.f, static_cast<uint64_t>(n)));
    expected.push_back(op.forward(MatrixView::row_major(inputs.back().data(), n, k)).values);
  }
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round)
        for (size_t i = 0; i < inputs.size(); ++i) {
          const int64_t n = static_cast<int64_t>(inputs[i].size()) / k;
          mismatches[static_cast<size_t>(t)] += op.forward(MatrixView::row_major(inputs[i].data(), n, k)).values != expected[i];
        }
    });
  for (std::thread& t : threads) t.join();
  for (int count : mismatches) EXPECT_EQ(count, 0);
}

}  // namespace
}  // namespace lutmul::testing
