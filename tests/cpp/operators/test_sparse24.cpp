// 2:4 semi-structured pruning: the kernel against its scalar reference bit for bit, the
// pattern itself (two kept in every group of four, the largest ones), the dense product of
// the pruned weight, calibration-aware scoring, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <tuple>

#include "../core/isa_sweep.h"
#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul {
namespace {

using testing::Family;
using testing::LevelTest;

using Sparse24Param = std::tuple<Isa, int64_t, int64_t, int64_t>;  // isa, N, K, M

// "avx2_N17_K60_M5".
std::string sparse24_name(const ::testing::TestParamInfo<Sparse24Param>& param_info) {
  const auto& [isa, n, k, m] = param_info.param;
  return isa_name(isa) + "_N" + std::to_string(n) + "_K" + std::to_string(k) + "_M" + std::to_string(m);
}

// N, K and M at each of `levels`. K: one group, an odd number of groups, one block, a block
// and one group, several blocks.
std::vector<Sparse24Param> sparse24_grid(const std::vector<Isa>& levels) {
  return testing::level_grid(Family::sparse24, levels, std::vector<int64_t>{1, 17, 33, 64, 100, 131},
                             std::vector<int64_t>{4, 60, 64, 68, 300}, std::vector<int64_t>{1, 5, 17, 64});
}

// One 2:4 operator of the grid's shape at the fixture's level, run on row-major X.
class Sparse24Shape : public LevelTest<Family::sparse24, Sparse24Param> {
 protected:
  void SetUp() override {
    LevelTest::SetUp();
    if (IsSkipped()) return;
    const auto [isa, n, k, m] = GetParam();
    (void)isa;
    n_ = n, k_ = k, m_ = m, ldy_ = m + 3;
    w_ = testing::uniform(k, m, -1.f, 1.f, static_cast<uint64_t>(k + 5 * m));
    x_ = testing::uniform(n, k, -1.f, 1.f, static_cast<uint64_t>(n + k));
    bias_ = testing::uniform(1, m, -1.f, 1.f, 4);
    op_.emplace(MatrixView::row_major(w_.data(), k, m), bias_.data());
    got_.assign(static_cast<size_t>(n * ldy_), -3.f);
    op_->forward(MatrixView::row_major(x_.data(), n, k), got_.data(), ldy_);
  }

  int64_t n_ = 0, k_ = 0, m_ = 0, ldy_ = 0;
  std::vector<float> w_, x_, bias_, got_;  // got_: forward at the level
  std::optional<Sparse24Linear> op_;
};

// Every SIMD level's 2:4 kernel against the scalar reference, bit for bit, both layouts.
class Sparse24Grid : public Sparse24Shape {};

TEST_P(Sparse24Grid, KernelEqualsTheScalarReference) {
  std::vector<float> expected(got_.size(), -3.f), got_col(expected);
  op_->forward_reference(MatrixView::row_major(x_.data(), n_, k_), expected.data(), ldy_);
  const std::vector<float> x_col = testing::to_col_major(x_, n_, k_);
  op_->forward(MatrixView::col_major(x_col.data(), n_, k_), got_col.data(), ldy_);
  ASSERT_EQ(0, std::memcmp(expected.data(), got_.data(), expected.size() * sizeof(float))) << isa_name(level());
  ASSERT_EQ(0, std::memcmp(expected.data(), got_col.data(), expected.size() * sizeof(float)));
}

// Every level, the scalar one included: the pattern, and the dense product of the pruned
// weight to float tolerance.
class Sparse24ProductGrid : public Sparse24Shape {};

TEST_P(Sparse24ProductGrid, PatternAndThePrunedDenseProduct) {
  const int64_t n = n_, k = k_, m = m_, ldy = ldy_;
  const std::vector<float>& w = w_;
  const std::vector<float>& x = x_;
  const std::vector<float>& bias = bias_;
  const std::vector<float>& got = got_;
  const Sparse24Linear& op = *op_;
  // Exactly two kept in every group of four, and they are the two largest |w|.
  const std::vector<float> pruned = op.pruned_dense();
  for (int64_t j = 0; j < m; ++j)
    for (int64_t g = 0; g < k / 4; ++g) {
      int kept = 0;
      float smallest_kept = INFINITY, largest_dropped = 0.f;
      for (int64_t i = 4 * g; i < 4 * g + 4; ++i) {
        if (pruned[i * m + j] != 0.f) {
          ++kept;
          ASSERT_EQ(w[i * m + j], pruned[i * m + j]);
          smallest_kept = std::min(smallest_kept, std::fabs(w[i * m + j]));
        } else {
          largest_dropped = std::max(largest_dropped, std::fabs(w[i * m + j]));
        }
      }
      ASSERT_EQ(2, kept);
      ASSERT_GE(smallest_kept, largest_dropped);
    }
  const std::vector<float> dense = testing::exact_product(x, pruned, n, k, m);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      ASSERT_NEAR(dense[i * m + j] + bias[j], got[i * ldy + j], 1e-4f * (1.f + std::fabs(dense[i * m + j])));
  EXPECT_EQ(k / 2 * m, static_cast<int64_t>(op.multiply_adds_per_row()));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Sparse24Grid,
                         ::testing::ValuesIn(sparse24_grid(testing::simd_levels())),
                         sparse24_name);
INSTANTIATE_TEST_SUITE_P(Shapes, Sparse24ProductGrid,
                         ::testing::ValuesIn(sparse24_grid(testing::every_level())),
                         sparse24_name);

// Sparse24Linear at every level (isa_sweep.h).
class Sparse24 : public LevelTest<Family::sparse24> {};

TEST_P(Sparse24, CalibrationAwareScoringKeepsWhatTheDataUses) {
  const int64_t n = 400, k = 96, m = 32;
  std::vector<float> x = testing::uniform(n, k, -1.f, 1.f, 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; j += 4) x[i * k + j] *= 20.f;  // one loud input in every group
  const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, 2);
  const MatrixView calibration = MatrixView::row_major(x.data(), n, k);
  const Sparse24Linear magnitude(MatrixView::row_major(w.data(), k, m));
  const Sparse24Linear aware(MatrixView::row_major(w.data(), k, m), nullptr, &calibration);
  const MatrixView xv = MatrixView::row_major(x.data(), n, k), wv = MatrixView::row_major(w.data(), k, m);
  const double err_magnitude = magnitude.relative_error(xv, wv), err_aware = aware.relative_error(xv, wv);
  std::printf("2:4: magnitude %.4f, calibration-aware %.4f\n", err_magnitude, err_aware);
  EXPECT_LT(err_aware, err_magnitude * 0.8);
}

TEST_P(Sparse24, BadInput) {
  std::vector<float> w = testing::uniform(8, 4, -1.f, 1.f, 1);
  EXPECT_THROW(Sparse24Linear(MatrixView::row_major(w.data(), 6, 4)), Error);  // K not divisible by 4
  EXPECT_THROW(Sparse24Linear(MatrixView::row_major(w.data(), 0, 4)), Error);
  w[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(Sparse24Linear(MatrixView::row_major(w.data(), 8, 4)), Error);
  w[3] = 1.f;
  const float bad_bias[4] = {0.f, NAN, 0.f, 0.f};
  EXPECT_THROW(Sparse24Linear(MatrixView::row_major(w.data(), 8, 4), bad_bias), Error);
  const Sparse24Linear op(MatrixView::row_major(w.data(), 8, 4));
  std::vector<float> x(3 * 8, 1.f);
  x[9] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), 3, 8)), Error);
  EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), 3, 4)), Error);
  const std::vector<float> calibration(5 * 7, 1.f);
  const MatrixView wrong = MatrixView::row_major(calibration.data(), 5, 7);
  EXPECT_THROW(Sparse24Linear(MatrixView::row_major(w.data(), 8, 4), nullptr, &wrong), Error);
}

INSTANTIATE_TEST_SUITE_P(Isa, Sparse24, ::testing::ValuesIn(testing::every_level()), testing::LevelName());

}  // namespace
}  // namespace lutmul
