// DenseLinear::forward_unchecked, the encoder's product on its own rows: the same bits as
// forward on finite X, in every path (the blocked product for a few rows, sgemm above it, a
// column-major X, a strided Y), no error for values that are not finite, and the argument
// checks of forward kept.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul::testing {
namespace {

TEST(DenseUnchecked, GivesForwardsBitsInEveryPath) {
  // K < M (forward checks X first) and K > M (it checks Y after).
  for (const auto& [k, m] : {std::pair<int64_t, int64_t>{24, 70}, {70, 24}}) {
    const std::vector<float> w = uniform(k, m, -1.f, 1.f, static_cast<uint64_t>(k));
    const std::vector<float> b = uniform(1, m, -1.f, 1.f, 3);
    const DenseLinear op(MatrixView::row_major(w.data(), k, m), b.data());
    for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{33}, int64_t{100}}) {
      const std::vector<float> x = uniform(n, k, -2.f, 2.f, static_cast<uint64_t>(n));
      const std::vector<float> x_columns = to_col_major(x, n, k);
      for (const MatrixView& view :
           {MatrixView::row_major(x.data(), n, k), MatrixView::col_major(x_columns.data(), n, k)}) {
        for (const int64_t ldy : {m, m + 5}) {
          std::vector<float> checked(static_cast<size_t>(n * ldy), 0.f), unchecked(checked.size(), 0.f);
          op.forward(view, checked.data(), ldy);
          op.forward_unchecked(view, unchecked.data(), ldy);
          EXPECT_EQ(unchecked, checked) << n << " x " << k << " x " << m << ", ldy " << ldy;
        }
      }
    }
  }
}

TEST(DenseUnchecked, ValuesThatAreNotFiniteGiveRowsThatAreNotFiniteNotAnError) {
  const int64_t k = 16, m = 40, n = 40;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 5);
  const DenseLinear op(MatrixView::row_major(w.data(), k, m));
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = uniform(n, k, -1.f, 1.f, 6);
    x[static_cast<size_t>(3 * k + 5)] = bad;  // row 3
    std::vector<float> y(static_cast<size_t>(n * m));
    EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), n, k), y.data(), m), Error);
    op.forward_unchecked(MatrixView::row_major(x.data(), n, k), y.data(), m);
    for (int64_t i = 0; i < n; ++i) {
      bool finite = true;
      for (int64_t j = 0; j < m; ++j) finite = finite && std::isfinite(y[static_cast<size_t>(i * m + j)]);
      EXPECT_EQ(finite, i != 3) << "row " << i;
    }
  }
}

TEST(DenseUnchecked, KeepsTheArgumentChecks) {
  const std::vector<float> w = uniform(8, 4, -1.f, 1.f, 9);
  const DenseLinear op(MatrixView::row_major(w.data(), 8, 4));
  const std::vector<float> x = uniform(2, 7, -1.f, 1.f, 10);
  std::vector<float> y(8);
  EXPECT_THROW(op.forward_unchecked(MatrixView::row_major(x.data(), 2, 7), y.data(), 4), Error);  // K is 8
  const std::vector<float> good = uniform(2, 8, -1.f, 1.f, 11);
  EXPECT_THROW(op.forward_unchecked(MatrixView::row_major(good.data(), 2, 8), nullptr, 4), Error);
  EXPECT_THROW(op.forward_unchecked(MatrixView::row_major(good.data(), 2, 8), y.data(), 3), Error);  // ldy < M
  op.forward_unchecked(MatrixView::row_major(good.data(), 0, 8), nullptr, 4);  // no rows: nothing to do
}

}  // namespace
}  // namespace lutmul::testing
